// The parent's writer threads: each makes `passes` passes of the point's
// write pattern over the array (or keeps passing until write_s), at
// write_rate if one is set.
#include "internal.h"

#include <algorithm>
#include <optional>

namespace cowsnap::detail {

namespace {
// Writes between two looks at whether the snapshot ended: rare enough to
// cost nothing, frequent enough to split each thread's counters at that moment.
constexpr std::size_t writes_per_look = 4096;
// The skewed pattern: HOT_SHARE of its writes go to a hot set of
// HOT_FRACTION of the pages, spread evenly over the array (every tenth
// page), the rest to any page: a server's hot keys, scattered on its heap.
constexpr double HOT_FRACTION = 0.1;
constexpr double HOT_SHARE = 0.9;

std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// A uniform value in [0, n) from 64 random bits.
std::size_t below(std::uint64_t bits, std::size_t n) {
    return std::size_t((static_cast<unsigned __int128>(bits) * n) >> 64);
}

std::size_t skewed_page(std::uint64_t bits, std::size_t pages) {
    const std::size_t hot = std::max<std::size_t>(1, std::size_t(double(pages) * HOT_FRACTION));
    const std::uint64_t more = splitmix64(bits);  // bits of its own: a hot write lands anywhere in the hot set
    if (double(more >> 11) * 0x1.0p-53 < HOT_SHARE) return below(splitmix64(more), hot) * (pages / hot);
    return below(bits, pages);
}

// One case per write pattern, under the name of its row in
// cowsnap/plan/patterns.py. A strided pattern writes every element of a
// writer's share once a pass: its elements interleaved across the writers,
// or a contiguous slice each. A drawn pattern makes as many one-element
// writes a pass as the array has pages, split over the writers, each to the
// page its `page` function draws from 64 bits of a stateless generator, so
// any write can be found again after the run.
struct PatternCase {
    const char* name;
    enum Stride { interleaved, slice, drawn } stride;
    std::size_t (*page)(std::uint64_t bits, std::size_t pages);  // drawn: the page a write goes to
};

const PatternCase PATTERN_CASES[] = {
    {"interleaved", PatternCase::interleaved, nullptr},  // the seed's: element by element across the threads
    {"blocked", PatternCase::slice, nullptr},
    {"random", PatternCase::drawn, below},
    {"skewed", PatternCase::drawn, skewed_page},
};

const PatternCase& pattern_case(const std::string& name) {
    for (const PatternCase& known : PATTERN_CASES)
        if (name == known.name) return known;
    throw std::invalid_argument("pattern=" + name + ": not a write pattern");
}
}  // namespace

// Where each write of each writer goes, by the point's pattern case.
struct WritePattern {
    const PatternCase& pattern;
    std::size_t elements, writers, page_elements, pages;

    WritePattern(const std::string& name, std::size_t n, int threads, std::size_t page_bytes)
        : pattern(pattern_case(name)), elements(n), writers(std::size_t(threads)),
          page_elements(std::max<std::size_t>(1, page_bytes / sizeof(element))),
          pages((n + page_elements - 1) / page_elements) {}

    bool strided() const { return pattern.stride != PatternCase::drawn; }
    bool interleaved() const { return pattern.stride == PatternCase::interleaved; }
    std::size_t first(std::size_t tid) const { return interleaved() ? tid : elements * tid / writers; }
    std::size_t last(std::size_t tid) const { return interleaved() ? elements : elements * (tid + 1) / writers; }
    std::size_t step() const { return interleaved() ? writers : 1; }
    // Writes a writer makes in one pass.
    std::size_t per_pass(std::size_t tid) const {
        if (!strided()) return std::max<std::size_t>(1, pages / writers);
        const std::size_t from = first(tid), to = last(tid);
        return to > from ? (to - from + step() - 1) / step() : 0;
    }
    // The element the k-th write of a pass goes to.
    std::size_t index(std::size_t tid, std::size_t pass, std::size_t k) const {
        if (strided()) return first(tid) + k * step();
        const std::uint64_t bits = splitmix64((std::uint64_t(tid) << 48) ^ (std::uint64_t(pass) << 32) ^ k);
        const std::size_t page = std::min(pages - 1, pattern.page(bits, pages));
        return std::min(elements - 1, page * page_elements + std::size_t(bits % page_elements));
    }
    // The distinct pages the first `writes` writes of each writer touch.
    std::size_t pages_touched(const std::vector<std::size_t>& writes) const {
        std::vector<bool> touched(pages);
        for (std::size_t tid = 0; tid < writers; ++tid) {
            const std::size_t per = per_pass(tid);
            if (per == 0) continue;
            if (strided()) {
                // Every page between a writer's first and last element:
                // a step is never longer than a page (writers <= 4096).
                const std::size_t count = std::min(writes[tid], per);
                if (count == 0) continue;
                const std::size_t from = first(tid), to = first(tid) + (count - 1) * step();
                for (std::size_t page = from / page_elements; page <= to / page_elements; ++page) touched[page] = true;
            } else {
                for (std::size_t w = 0; w < writes[tid]; ++w) touched[index(tid, w / per, w % per) / page_elements] = true;
            }
        }
        return std::size_t(std::count(touched.begin(), touched.end(), true));
    }
};

struct Writers::Shared {
    Gate gate;
    std::atomic<bool> snapshot_ended{false};
    // touched_during: writers that wrote their share while the snapshot
    // lived wait here for its end; the last to arrive calls share_written.
    std::mutex pause_mutex;
    std::condition_variable ended;
    int paused = 0;
    std::function<void()> share_written;
    std::vector<std::thread> threads;
    std::vector<std::string> placement;
    std::vector<ThreadCounters> all, during_snapshot;
    std::vector<clock::time_point> ends;
    std::vector<int> cpus;  // where each thread finished
    std::vector<std::size_t> writes, writes_during;  // each thread's writes, and before it saw the end
    std::vector<double> paused_s;
    clock::time_point span_start;  // set before the gate opens
    // write_latency_kib > 0: each thread's write latencies by the phase
    // the write started in, and its first write's
    std::vector<LatencyHistogram> latency_during, latency_after;
    std::vector<std::uint64_t> first_write_ns;
    std::optional<WritePattern> pattern;
};

Writers::Writers(Region& array, const Params& params, bool query_copies) : shared_(new Shared) {
    Shared& s = *shared_;
    const int writers = params.writers;
    s.placement.resize(writers);
    s.all.resize(writers);
    s.during_snapshot.resize(writers);
    s.ends.resize(writers);
    s.cpus.resize(writers, -1);
    s.writes.resize(writers, 0);
    s.writes_during.resize(writers, 0);
    s.paused_s.resize(writers, 0);
    s.first_write_ns.resize(writers, 0);
    const bool timed = params.write_latency_kib > 0;
    // Allocated and zeroed here: a writer faults on its histograms only
    // where a fork made them copy-on-write (their few pages, once).
    if (timed) {
        s.latency_during.resize(writers);
        s.latency_after.resize(writers);
    }
    s.pattern.emplace(params.pattern, array.elements(), writers, array.page_bytes);
    const WritePattern& pattern = *s.pattern;
    const std::string where = params.numa_writers;
    element* data = array.data;
    // A timed write is this thread's writes into one write_latency_kib span
    // of the array (strided), or as many one-element writes as that span
    // has pages (random); untimed, a group is writes_per_look writes.
    const std::size_t span_writes = pattern.strided() ? params.write_latency_kib * 1024 / sizeof(element)
                                                      : params.write_latency_kib * 1024 / array.page_bytes;
    const std::size_t group = timed ? std::max<std::size_t>(1, span_writes) : writes_per_look;
    const long passes = params.passes;
    const double write_s = params.write_s, rate = double(params.write_rate);
    const double share = params.touched_during == "free" ? -1.0 : std::stod(params.touched_during);
    for (int tid = 0; tid < writers; ++tid) {
        s.threads.emplace_back([&s, &pattern, data, query_copies, where, tid, timed, group, passes, write_s, rate,
                                share] {
            s.placement[tid] = place_thread(where);
            // Read before the gate: a parked thread's counters do not move.
            const ThreadCounters before = thread_counters(query_copies);
            s.gate.arrive_and_wait();
            std::optional<ThreadCounters> at_end;  // this thread's counters when the snapshot ended
            std::size_t done = 0;                  // writes so far
            auto look = [&] {
                if (!at_end && s.snapshot_ended.load(std::memory_order_acquire)) {
                    at_end = thread_counters(query_copies);
                    s.writes_during[tid] = done;
                }
            };
            // The first write counts from the span's start: the snapshot's
            // begin (the fork call, a stop) holds it up. It started during
            // the snapshot; every later write in the phase it started in,
            // after the snapshot once the look before it saw the end.
            clock::time_point previous = s.span_start;
            bool first_write = true;
            look();
            const std::size_t per = pattern.per_pass(tid);
            // touched_during: the write after which this writer waits for the snapshot's end.
            const std::size_t pause_at = share < 0 ? SIZE_MAX : std::size_t(share * double(per));
            const std::size_t step = pattern.step(), first = pattern.first(tid);
            bool paused = false;
            auto pause = [&] {
                paused = true;
                const auto t = clock::now();
                std::unique_lock<std::mutex> lock(s.pause_mutex);
                if (++s.paused == int(s.threads.size()) && s.share_written) s.share_written();
                s.ended.wait(lock, [&] { return s.snapshot_ended.load(); });
                lock.unlock();
                s.paused_s[tid] = seconds_between(t, clock::now());
                look();
                previous = clock::now();  // the wait is no write
            };
            auto pace = [&](double due_s) {
                const auto due = s.span_start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(due_s));
                if (clock::now() >= due) return false;
                std::this_thread::sleep_until(due);
                return true;
            };
            auto out_of_time = [&] { return write_s > 0 && seconds_between(s.span_start, clock::now()) >= write_s; };
            bool stop = false;
            for (std::size_t pass = 0; !stop && (write_s > 0 || pass < std::size_t(passes)); ++pass) {
                for (std::size_t k = 0; k < per && !stop;) {
                    if (done == pause_at) pause();
                    std::size_t end = k + group;
                    if (timed && pattern.strided()) {  // to the end of this write_latency_kib span
                        const std::size_t i = first + k * step, span_end = (i / group + 1) * group;
                        end = k + (span_end - i + step - 1) / step;
                    }
                    end = std::min(end, per);
                    if (done < pause_at) end = std::min(end, k + (pause_at - done));
                    done += end - k;
                    // The seed's loop, kept tight: threads take every
                    // writers-th element (interleaved) or their own slice.
                    if (pattern.strided()) {
                        for (std::size_t i = first + k * step; k < end; ++k, i += step) data[i] = written_value(i);
                    } else {
                        for (; k < end; ++k) {
                            const std::size_t i = pattern.index(tid, pass, k);
                            data[i] = written_value(i);
                        }
                    }
                    if (timed) {
                        const clock::time_point now = clock::now();
                        const auto ns = std::uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(now - previous).count());
                        const bool started_after = !first_write && at_end.has_value();
                        if (first_write) s.first_write_ns[tid] = std::max<std::uint64_t>(ns, 1);
                        first_write = false;
                        (started_after ? s.latency_after : s.latency_during)[tid].record(ns);
                        previous = now;
                    }
                    const bool ended_before = at_end.has_value();
                    look();
                    // A set write rate: wait until this many writes are due.
                    const bool paced = rate > 0 && pace(double(done) / rate);
                    // Reading the counters at the snapshot's end, or waiting
                    // for the rate, is no write.
                    if (timed && ((at_end && !ended_before) || paced)) previous = clock::now();
                    stop = out_of_time();
                }
            }
            if (pause_at != SIZE_MAX && !paused) pause();  // its share was all it wrote
            s.ends[tid] = clock::now();  // the clock first: it ends the timed span
            s.cpus[tid] = sched_getcpu();
            s.writes[tid] = done;
            if (!at_end) s.writes_during[tid] = done;
            const ThreadCounters after = thread_counters(query_copies);
            s.all[tid] = after - before;
            s.during_snapshot[tid] = at_end.value_or(after) - before;
        });
    }
    s.gate.wait_arrived(writers);
}

Writers::~Writers() {
    shared_->gate.open();
    snapshot_ended();  // a writer paused for it must not wait forever
    for (auto& thread : shared_->threads)
        if (thread.joinable()) thread.join();
}

std::string Writers::placement_error() const {
    for (const auto& error : shared_->placement)
        if (!error.empty()) return "numa_writers=" + error;
    return "";
}

void Writers::on_share_written(std::function<void()> call) { shared_->share_written = std::move(call); }

void Writers::snapshot_ended() {
    std::lock_guard<std::mutex> lock(shared_->pause_mutex);
    shared_->snapshot_ended.store(true, std::memory_order_release);
    shared_->ended.notify_all();
}

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
        total.paused_s = std::max(total.paused_s, s.paused_s[tid]);
        total.writes += double(s.writes[tid]);
        if (!s.latency_during.empty()) {
            total.latency_during += s.latency_during[tid];
            total.latency_after += s.latency_after[tid];
        }
    }
    return total;
}

Writers::Touched Writers::pages_touched() const {
    const Shared& s = *shared_;
    return {double(s.pattern->pages_touched(s.writes)), double(s.pattern->pages_touched(s.writes_during))};
}

}  // namespace cowsnap::detail
