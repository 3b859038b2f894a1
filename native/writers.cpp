// The parent's writer threads: every element of the array is written once.
#include "internal.h"

#include <optional>

namespace cowsnap::detail {

struct Writers::Shared {
    Gate gate;
    std::atomic<bool> snapshot_ended{false};
    std::vector<std::thread> threads;
    std::vector<std::string> placement;
    std::vector<ThreadCounters> all, during_snapshot;
    std::vector<clock::time_point> ends;
    std::vector<int> cpus;  // where each thread finished
};

namespace {
// Writes between two looks at whether the snapshot ended: rare enough to
// cost nothing, frequent enough to split each thread's counters at that moment.
constexpr std::size_t writes_per_look = 4096;
}  // namespace

Writers::Writers(Region& array, const Params& params, bool query_copies) : shared_(new Shared) {
    Shared& s = *shared_;
    const int writers = params.writers;
    s.placement.resize(writers);
    s.all.resize(writers);
    s.during_snapshot.resize(writers);
    s.ends.resize(writers);
    s.cpus.resize(writers, -1);
    const bool interleaved = params.pattern == "interleaved";
    const std::string where = params.numa_writers;
    element* data = array.data;
    const std::size_t n = array.elements();
    for (int tid = 0; tid < writers; ++tid) {
        s.threads.emplace_back([&s, data, n, writers, interleaved, query_copies, where, tid] {
            s.placement[tid] = place_thread(where);
            // Read before the gate: a parked thread's counters do not move.
            const ThreadCounters before = thread_counters(query_copies);
            s.gate.arrive_and_wait();
            std::optional<ThreadCounters> at_end;  // this thread's counters when the snapshot ended
            auto look = [&] {
                if (!at_end && s.snapshot_ended.load(std::memory_order_acquire)) at_end = thread_counters(query_copies);
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
            s.ends[tid] = clock::now();  // the clock first: it ends the timed span
            s.cpus[tid] = sched_getcpu();
            const ThreadCounters after = thread_counters(query_copies);
            s.all[tid] = after - before;
            s.during_snapshot[tid] = at_end.value_or(after) - before;
        });
    }
    s.gate.wait_arrived(writers);
}

Writers::~Writers() {
    shared_->gate.open();
    for (auto& thread : shared_->threads)
        if (thread.joinable()) thread.join();
}

std::string Writers::placement_error() const {
    for (const auto& error : shared_->placement)
        if (!error.empty()) return "numa_writers=" + error;
    return "";
}

void Writers::snapshot_ended() { shared_->snapshot_ended.store(true, std::memory_order_release); }

void Writers::start() { shared_->gate.open(); }

Writers::Totals Writers::finish() {
    Totals total;
    Shared& s = *shared_;
    for (std::size_t tid = 0; tid < s.threads.size(); ++tid) {
        s.threads[tid].join();
        if (tid == 0) {
            total.all = s.all[0];
            total.during_snapshot = s.during_snapshot[0];
            total.last_end = s.ends[0];
        } else {
            total.all += s.all[tid];
            total.during_snapshot += s.during_snapshot[tid];
            total.last_end = std::max(total.last_end, s.ends[tid]);
        }
        total.cpus += (tid ? "," : "") + std::to_string(s.cpus[tid]);
    }
    return total;
}

}  // namespace cowsnap::detail
