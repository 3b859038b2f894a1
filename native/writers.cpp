// The parent's writer threads: every element of the array is written once.
#include "internal.h"

#include <sys/resource.h>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace cowsnap::detail {

struct Writers::Shared {
    std::mutex mutex;
    std::condition_variable go;
    bool started = false;
    std::vector<std::thread> threads;
    std::vector<Usage> usage;
    std::vector<CopyDelay> copies;
};

Writers::Writers(Region& array, const Params& params) : shared_(new Shared) {
    Shared& s = *shared_;
    const int writers = params.writers;
    s.usage.resize(writers);
    s.copies.resize(writers);
    const bool interleaved = params.pattern == "interleaved";
    const bool query_delay = delay_accounting_on();
    const std::string placement = params.numa_writers;
    element* data = array.data;
    const std::size_t n = array.elements();
    for (int tid = 0; tid < writers; ++tid) {
        s.threads.emplace_back([&s, data, n, writers, interleaved, query_delay, placement, tid] {
            place_thread(placement);
            {
                std::unique_lock<std::mutex> lock(s.mutex);
                s.go.wait(lock, [&s] { return s.started; });
            }
            const Usage before = usage_of(RUSAGE_THREAD);
            if (interleaved) {
                // The seed's loop: threads take every writers-th element, so
                // they all write every page and share every cache line.
                for (std::size_t i = tid; i < n; i += writers) data[i] = written_value(i);
            } else {
                // Blocked: each thread writes its own contiguous slice.
                const std::size_t first = n * tid / writers, last = n * (tid + 1) / writers;
                for (std::size_t i = first; i < last; ++i) data[i] = written_value(i);
            }
            s.usage[tid] = usage_of(RUSAGE_THREAD) - before;
            if (query_delay) s.copies[tid] = thread_copy_delay();
        });
    }
}

Writers::~Writers() {
    if (!shared_->started) start();
    for (auto& thread : shared_->threads)
        if (thread.joinable()) thread.join();
    delete shared_;
}

void Writers::start() {
    {
        std::lock_guard<std::mutex> lock(shared_->mutex);
        shared_->started = true;
    }
    shared_->go.notify_all();
}

WriterTotals Writers::finish() {
    WriterTotals total;
    total.copies.ok = delay_accounting_on();
    for (std::size_t tid = 0; tid < shared_->threads.size(); ++tid) {
        shared_->threads[tid].join();
        total.usage += shared_->usage[tid];
        total.copies += shared_->copies[tid];
    }
    return total;
}

}  // namespace cowsnap::detail
