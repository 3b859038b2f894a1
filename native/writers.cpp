// The parent's writer threads: every element of the array is written once.
#include "internal.h"

#include <algorithm>
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
    clock::time_point span_start;  // set before the gate opens
    // write_latency_kib > 0: each thread's write latencies by the phase
    // the write started in, and its first write's
    std::vector<LatencyHistogram> latency_during, latency_after;
    std::vector<std::uint64_t> first_write_ns;
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
    s.first_write_ns.resize(writers, 0);
    const bool timed = params.write_latency_kib > 0;
    // Allocated and zeroed here: a writer faults on its histograms only
    // where a fork made them copy-on-write (their few pages, once).
    if (timed) {
        s.latency_during.resize(writers);
        s.latency_after.resize(writers);
    }
    const bool interleaved = params.pattern == "interleaved";
    const std::string where = params.numa_writers;
    element* data = array.data;
    const std::size_t n = array.elements();
    // A timed write is this thread's writes into one write_latency_kib span
    // of the array; untimed, a group is writes_per_look writes.
    const std::size_t step = interleaved ? writers : 1;
    const std::size_t group = timed ? std::max<std::size_t>(1, params.write_latency_kib * 1024 / sizeof(element))
                                    : step * writes_per_look;
    for (int tid = 0; tid < writers; ++tid) {
        s.threads.emplace_back([&s, data, n, writers, interleaved, query_copies, where, tid, timed, group, step] {
            s.placement[tid] = place_thread(where);
            // Read before the gate: a parked thread's counters do not move.
            const ThreadCounters before = thread_counters(query_copies);
            s.gate.arrive_and_wait();
            std::optional<ThreadCounters> at_end;  // this thread's counters when the snapshot ended
            auto look = [&] {
                if (!at_end && s.snapshot_ended.load(std::memory_order_acquire)) at_end = thread_counters(query_copies);
            };
            // The first write counts from the span's start: the snapshot's
            // begin (the fork call, a stop) holds it up. It started during
            // the snapshot; every later write in the phase it started in,
            // after the snapshot once the look before it saw the end.
            clock::time_point previous = s.span_start;
            bool first_write = true;
            look();
            // Interleaved, the seed's loop: threads take every writers-th
            // element, so they all write every page and share every cache
            // line. Blocked: each thread writes its own contiguous slice.
            const std::size_t first = interleaved ? tid : n * tid / writers;
            const std::size_t last = interleaved ? n : n * (tid + 1) / writers;
            for (std::size_t i = first; i < last;) {
                const std::size_t group_end = std::min(last, timed ? (i / group + 1) * group : i + group);
                for (; i < group_end; i += step) data[i] = written_value(i);
                if (timed) {
                    const clock::time_point now = clock::now();
                    const auto ns = std::uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(now - previous).count());
                    const bool started_after = !first_write && at_end.has_value();
                    if (first_write) s.first_write_ns[tid] = std::max<std::uint64_t>(ns, 1);
                    first_write = false;
                    (started_after ? s.latency_after : s.latency_during)[tid].record(ns);
                    previous = now;
                    const bool ended_before = at_end.has_value();
                    look();
                    // Reading the counters at the snapshot's end is no write.
                    if (at_end && !ended_before) previous = clock::now();
                } else {
                    look();
                }
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

void Writers::start(clock::time_point span_start) {
    shared_->span_start = span_start;
    shared_->gate.open();  // its mutex publishes span_start to the threads
}

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
        total.first_write_ns = std::max(total.first_write_ns, s.first_write_ns[tid]);
        if (!s.latency_during.empty()) {
            total.latency_during += s.latency_during[tid];
            total.latency_after += s.latency_after[tid];
        }
    }
    return total;
}

}  // namespace cowsnap::detail
