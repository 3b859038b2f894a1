// The snapshot's copier threads, shared by every method that copies.
#include "internal.h"

#include <cstring>

namespace cowsnap::detail {

Copiers::Copiers(const Params& params, std::size_t batches, std::function<void(std::size_t)> copy,
                 bool query_copies)
    : counters_(params.copiers), placement_(params.copiers) {
    const int copiers = params.copiers;
    for (int tid = 0; tid < copiers; ++tid) {
        threads_.emplace_back([=, this] {
            placement_[tid] = place_thread(params.numa_copiers);
            const ThreadCounters before = thread_counters(query_copies);
            gate_.arrive_and_wait();
            for (std::size_t b = tid; b < batches; b += copiers) copy(b);
            counters_[tid] = thread_counters(query_copies) - before;
        });
    }
    gate_.wait_arrived(copiers);
}

Copiers::~Copiers() {
    if (!joined_) join();
}

std::string Copiers::placement_error() {
    for (const auto& error : placement_)
        if (!error.empty()) return "numa_copiers=" + error;
    return "";
}

void Copiers::start() { gate_.open(); }

ThreadCounters Copiers::join() {
    gate_.open();  // on an error path, release them (they copy, then end)
    ThreadCounters total;
    for (std::size_t tid = 0; tid < threads_.size(); ++tid) {
        if (threads_[tid].joinable()) threads_[tid].join();
        if (tid == 0) total = counters_[tid];
        else total += counters_[tid];
    }
    joined_ = true;
    return total;
}

void copy_batch(const Region& array, element* dest, std::size_t batch_bytes, std::size_t b) {
    const std::size_t offset = b * batch_bytes, length = std::min(batch_bytes, array.bytes - offset);
    std::memcpy(reinterpret_cast<char*>(dest) + offset, reinterpret_cast<const char*>(array.data) + offset, length);
}

std::size_t batch_count(const Params& params, const Region& array) {
    const std::size_t batch = std::size_t(params.batch_kib) * 1024;
    return (array.bytes + batch - 1) / batch;
}

}  // namespace cowsnap::detail
