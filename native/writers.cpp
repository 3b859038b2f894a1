// The parent's writer threads: every element of the array is written once.
#include "internal.h"

#include <sys/resource.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

namespace cowsnap::detail {

struct Writers::Shared {
    std::mutex mutex;
    std::condition_variable go;
    bool started = false;
    bool query_delay = false;  // delay accounting on: each thread reads its copies
    std::atomic<bool> snapshot_ended{false};
    std::vector<std::thread> threads;
    std::vector<Usage> usage, usage_before_end;
    std::vector<CopyDelay> copies;
};

namespace {
// Writes between two looks at whether the snapshot ended: rare enough to
// cost nothing, frequent enough to split each thread's usage at that moment.
constexpr std::size_t writes_per_look = 4096;
}  // namespace

Writers::Writers(Region& array, const Params& params) : shared_(new Shared) {
    Shared& s = *shared_;
    const int writers = params.writers;
    s.usage.resize(writers);
    s.usage_before_end.resize(writers);
    s.copies.resize(writers);
    const bool interleaved = params.pattern == "interleaved";
    const bool query_delay = s.query_delay = delay_accounting_on();
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
            std::optional<Usage> at_end;  // this thread's usage when the snapshot ended
            auto look = [&] {
                if (!at_end && s.snapshot_ended.load(std::memory_order_relaxed)) at_end = usage_of(RUSAGE_THREAD);
            };
            look();
            // Interleaved, the seed's loop: threads take every writers-th
            // element, so they all write every page and share every cache
            // line. Blocked: each thread writes its own contiguous slice.
            const std::size_t first = interleaved ? tid : n * tid / writers;
            const std::size_t last = interleaved ? n : n * (tid + 1) / writers;
            const std::size_t step = interleaved ? writers : 1;
            for (std::size_t chunk = first; chunk < last; chunk += step * writes_per_look) {
                const std::size_t chunk_end = std::min(last, chunk + step * writes_per_look);
                for (std::size_t i = chunk; i < chunk_end; i += step) data[i] = written_value(i);
                look();
            }
            const Usage after = usage_of(RUSAGE_THREAD);
            s.usage[tid] = after - before;
            s.usage_before_end[tid] = at_end.value_or(after) - before;
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

void Writers::snapshot_ended() { shared_->snapshot_ended = true; }

void Writers::start() {
    {
        std::lock_guard<std::mutex> lock(shared_->mutex);
        shared_->started = true;
    }
    shared_->go.notify_all();
}

WriterTotals Writers::finish() {
    WriterTotals total;
    total.copies.ok = shared_->query_delay;
    for (std::size_t tid = 0; tid < shared_->threads.size(); ++tid) {
        shared_->threads[tid].join();
        total.usage += shared_->usage[tid];
        total.usage_before_end += shared_->usage_before_end[tid];
        total.copies += shared_->copies[tid];
    }
    return total;
}

}  // namespace cowsnap::detail
