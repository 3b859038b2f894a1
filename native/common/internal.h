// Pieces shared by the benchmark's source files; not part of the interface
// Python sees (cowsnap.h is). The library (native/library/) includes only
// the two it shares with them: wire.h and taskstats.h.
#pragma once

#include "cowsnap.h"
#include "taskstats.h"
#include "wire.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

namespace cowsnap::detail {

using element = std::uint64_t;
using clock = std::chrono::steady_clock;

inline double seconds_between(clock::time_point from, clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

// Raised when a setting did not take effect: the run is skipped, not measured.
struct NotApplied : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ---- harness.cpp: one point, measured in this process
Result measure(const Params& params);

// Threads park here until it opens.
class Gate {
public:
    void arrive_and_wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        ++arrived_;
        changed_.notify_all();
        changed_.wait(lock, [this] { return open_; });
    }
    void wait_arrived(int count) {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return arrived_ >= count; });
    }
    void open() {
        std::lock_guard<std::mutex> lock(mutex_);
        open_ = true;
        changed_.notify_all();
    }
    bool is_open() {
        std::lock_guard<std::mutex> lock(mutex_);
        return open_;
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    int arrived_ = 0;
    bool open_ = false;
};

// ---- memory.cpp: the array, its backing, and the values that prove a copy
struct Region {
    element* data = nullptr;
    std::size_t bytes = 0;
    std::size_t page_bytes = 4096;  // page size of the backing
    void* map_base = nullptr;       // what to munmap (may start before data)
    std::size_t map_bytes = 0;
    bool from_new = false;          // allocated with new[] (alloc=new): delete[] it
    std::size_t elements() const { return bytes / sizeof(element); }
    std::size_t pages() const;      // pages the data spans (one more when unaligned)
    // The whole pages inside the data: where page-granular advice applies.
    char* aligned_begin() const;
    std::size_t aligned_bytes() const;
};

std::size_t page_bytes_of(const std::string& backing);
// `at`: map exactly there (MAP_FIXED_NOREPLACE), else anywhere.
Region map_region(const std::string& backing, std::size_t bytes, bool populate, void* at);
// alloc=new, as the seed: `new element[n]()` (zeroed) or `new element[n]` (untouched).
Region new_region(const std::string& backing, std::size_t bytes, bool zeroed);
void free_region(Region& region);
// Unmaps or deletes a region however the run ends.
struct OwnedRegion {
    Region region;
    OwnedRegion() = default;
    OwnedRegion(const OwnedRegion&) = delete;
    OwnedRegion& operator=(const OwnedRegion&) = delete;
    ~OwnedRegion() { free_region(region); }
};

// The array holds fork_time_value(i) when the snapshot is taken; writers
// store written_value(i). A copy is consistent when every element of it
// equals fork_time_value.
inline element fork_time_value(std::size_t i) { return i * 0x9E3779B97F4A7C15ull + 1; }
inline element written_value(std::size_t i) { return ~fork_time_value(i); }
void fill_fork_time_values(Region& region);
bool holds_fork_time_values(const element* copy, std::size_t first, std::size_t count);
// The same check with `threads` threads, each a contiguous slice.
bool copy_is_consistent(const element* copy, std::size_t n, int threads);
// A point with check_copy false, as the seed's program, checks nothing: its record says so (snapshot_check).
inline const char* const NOT_CHECKED = "not checked: check_copy is false (the seed's program checks nothing)";

// The kiB of the array's mapping backed by PMD-mapped huge pages (smaps).
long anon_huge_kib(const void* data);
// Faults that allocated an mTHP folio of this size so far (sysfs stats), -1 if none.
long mthp_fault_allocs(long size_kib);

// ---- counters.cpp: kernel counters and clocks (taskstats.h: a thread's copies)
using Vmstat = std::map<std::string, long>;
Vmstat read_vmstat();

struct Usage {
    double minflt = 0, majflt = 0, utime_s = 0, stime_s = 0;
};
Usage usage_of(int who);  // RUSAGE_SELF, RUSAGE_THREAD
Usage usage_from(const void* rusage);
Usage operator-(const Usage& a, const Usage& b);
Usage& operator+=(Usage& a, const Usage& b);

// What one thread's counters say at one moment.
struct ThreadCounters {
    Usage usage;             // getrusage(RUSAGE_THREAD)
    double cpu_delay_s = 0;  // time spent runnable, waiting for a CPU (schedstat)
    CopyDelay copies;        // when asked for (delay accounting on)
};
ThreadCounters thread_counters(bool query_copies);
ThreadCounters operator-(const ThreadCounters& a, const ThreadCounters& b);
ThreadCounters& operator+=(ThreadCounters& a, const ThreadCounters& b);

// One moment of the writers' phase: time, system counters, process usage.
struct Mark {
    clock::time_point time;
    Vmstat vmstat;
    Usage self;
};
Mark mark_now();     // the clock first: it ends a timed span
Mark mark_start();   // the counters first: it starts a timed span

// Writes prefix_minflt, _majflt, _utime_s, _stime_s (suffix appended).
void put_usage(Result& result, const std::string& prefix, const Usage& usage, const std::string& suffix = "");
// The same, plus _cpu_delay_s and the copies (or their source's error).
void put_thread_counters(Result& result, const std::string& prefix, const ThreadCounters& counters,
                         const std::string& suffix = "");
// Writes each vmstat key's change from a to b, with suffix appended.
void put_vmstat_delta(Result& result, const Vmstat& a, const Vmstat& b, const std::string& suffix = "");

// Counts pages of [data, data+bytes) that are present but no longer mapped
// exclusively by this process (pagemap bit 56 clear): still shared with a child.
long shared_pages(const void* data, std::size_t bytes);

long mapping_count();                          // lines of /proc/self/maps: what a fork copies
double fork_empty_seconds();                   // fork() of this process, array not yet mapped
double memcpy_gbps(std::size_t buffer_bytes);  // one thread, best of three
// What a fresh page costs right now: the first write to each page of a new
// mapping of `bytes` (a fault, a page allocated, zeroed and, on a VM whose
// host backs memory lazily, backed) against the second (a plain write), in
// microseconds per page.
struct FreshPageCost {
    double first_touch_us = 0, second_touch_us = 0;
};
FreshPageCost fresh_page_cost(std::size_t bytes);
// Touches and frees `bytes` of memory, so the free memory the run will
// allocate is backed by the host again (a guest that returned it, through
// free page reporting, waits for the host on its next first touch); its
// seconds.
double warm_memory(std::size_t bytes);

// The memory a snapshot costs, from a memory cgroup of the run's own (the
// runner makes it and names it in COWSNAP_MEMORY_CGROUP): the peak of what
// this process and its children hold together over the snapshot, less what
// the process held just before the destination was allocated. A cgroup
// counts every page its processes fault in, copies and page tables
// included, with nothing sampled while the writers run.
constexpr const char* MEMORY_CGROUP_VARIABLE = "COWSNAP_MEMORY_CGROUP";
struct Backing;
// Moves this process into that cgroup: first thing in main(), before
// anything is allocated. When it cannot, the record says why.
void join_memory_cgroup();
class SnapshotMemory {
public:
    // Reads the usage now (just before the destination is allocated).
    explicit SnapshotMemory(const Backing& backing);
    ~SnapshotMemory();
    SnapshotMemory(const SnapshotMemory&) = delete;
    SnapshotMemory& operator=(const SnapshotMemory&) = delete;
    void reset_peak();            // just before the timed span
    void report(Result& result);  // once the snapshot ended (a child reaped)

private:
    std::string error_;  // empty while counted; else why not
    double usage_ = 0;
    int peak_fd_ = -1;  // cgroup v2: the memory.peak this process reset
};

// ---- numa.cpp: memory policy and CPU placement, and what took effect
void apply_memory_policy(void* data, std::size_t bytes, const std::string& numa_mem);
std::string memory_policy_of(void* data);
// Share of sampled pages per node, {} when it cannot be read.
std::map<int, double> node_shares(const void* data, std::size_t bytes);
std::string describe_shares(const std::map<int, double>& shares);  // "0:75%,1:25%"
// '' when the pages sit where numa_mem says, else why not.
std::string placement_mismatch(const std::string& numa_mem, const std::map<int, double>& shares, int fill_node);
int current_node();
// Pins the calling thread to a node's CPUs ('' when done or any, else why not).
std::string place_thread(const std::string& placement);

// ---- latency.cpp: how long each timed write took, per writer and phase
// A cache line of its own: the writers' histograms sit side by side in one
// array, and each writer updates its own on every timed write.
struct alignas(64) LatencyHistogram {
    static constexpr int sub_bits = 5;  // 32 buckets per power of two
    static constexpr std::uint64_t max_trackable_ns = (std::uint64_t(1) << 44) - 1;  // 4.9 hours
    static constexpr std::size_t buckets = std::size_t(44 - sub_bits + 1) << sub_bits;
    std::vector<std::uint64_t> counts = std::vector<std::uint64_t>(buckets);  // zeroed: touched before timing
    std::uint64_t total = 0, max_ns = 0;
    void record(std::uint64_t ns) {
        ++counts[bucket_of(ns)];
        ++total;
        if (ns > max_ns) max_ns = ns;
    }
    static std::size_t bucket_of(std::uint64_t ns);
    static std::uint64_t lower_bound(std::size_t bucket);
    static std::uint64_t upper_bound(std::size_t bucket);
    LatencyHistogram& operator+=(const LatencyHistogram& other);
    std::uint64_t quantile_ns(double q) const;
};
// writes_timed, write_p50_s, _p99_s, _p999_s, _max_s (suffix appended) and
// the histogram's non-empty buckets under the phase (suffix, or "all").
void put_latency(Result& result, const LatencyHistogram& histogram, const std::string& suffix);

// ---- writers.cpp: the parent's writer threads
class Writers {
public:
    // Creates the threads, places them, and returns once each waits at the
    // start gate; placement_error() then says if one could not be placed.
    Writers(Region& array, const Params& params, bool query_copies);
    ~Writers();
    std::string placement_error() const;
    void start(clock::time_point span_start);  // opens the gate; first writes count from span_start
    void snapshot_ended();  // from now on, their counters count as after the snapshot
    // touched_during: called once every writer wrote its share while the
    // snapshot lived (they then wait for snapshot_ended()).
    void on_share_written(std::function<void()> call);
    struct Totals {
        ThreadCounters all, during_snapshot;  // summed over the threads
        clock::time_point last_end;           // when the last one finished
        std::string cpus;                     // the CPU each finished on: "1,1"
        // write_latency_kib > 0: write latencies merged over the threads, by
        // the phase a write started in, and the longest first write
        LatencyHistogram latency_during, latency_after;
        std::uint64_t first_write_ns = 0;
        double paused_s = 0;  // touched_during: the longest wait for the snapshot's end
        double writes = 0;    // one-element writes, over the threads
    };
    Totals finish();  // joins them
    // Distinct pages of the array the writers wrote, in all and before each
    // saw the snapshot's end: the writes replayed after finish().
    struct Touched {
        double all = 0, during_snapshot = 0;
    };
    Touched pages_touched() const;

private:
    struct Shared;
    std::unique_ptr<Shared> shared_;
};

// Threads that copy a snapshot batch by batch: created up front and parked,
// so that no thread is created inside a timed span; batch b goes to thread
// b % copiers, which calls copy(b).
class Copiers {
public:
    Copiers(const Params& params, std::size_t batches, std::function<void(std::size_t)> copy, bool query_copies);
    ~Copiers();
    std::string placement_error();  // '' when every thread sits where numa_copiers says
    void start();
    ThreadCounters join();  // summed over the threads

private:
    std::vector<std::thread> threads_;
    std::vector<ThreadCounters> counters_;
    std::vector<std::string> placement_;
    Gate gate_;
    bool joined_ = false;
};
// memcpy of batch b of the array to the same place in dest.
void copy_batch(const Region& array, element* dest, std::size_t batch_bytes, std::size_t b);
std::size_t batch_count(const Params& params, const Region& array);

// ---- one file per snapshot method, behind one interface. The harness calls
// prepare() before its timed span, begin() at the span's start (what it costs
// holds the writers up), end() to wait for the snapshot to end (the moment it
// did), writers_done() once the writers no longer need it to live (they
// finished, or wrote their touched_during share), then report().
class Snapshot {
public:
    virtual ~Snapshot() = default;
    virtual void prepare() {}
    virtual void begin() = 0;
    virtual Mark end() = 0;
    virtual void writers_done() {}
    // Its own keys, and the check of its copy (fail()s the run when wrong).
    virtual void report(Result& result) = 0;
    // For populate=write-after-release: batch indices as the snapshot
    // releases them, -1 where it releases none.
    virtual int release_fd() const { return -1; }
    // The writers start only once the snapshot ended (then populating the
    // array is part of their phase); else they start as it begins.
    virtual bool writers_wait() const { return false; }
    // Pages still shared with the snapshot can be sampled while the writers
    // run (sharing_interval_ms).
    virtual bool samples_sharing() const { return false; }
};

// ---- methods.cpp: a point's backing, parsed once from its name, and the
// snapshot methods by name: each method's own file registers its Snapshot
// (COWSNAP_METHOD below), so the harness names no method.
struct Backing {
    enum Kind { base_pages, thp, hugetlb, mthp } kind = base_pages;
    long mthp_kib = 0;  // mthp: the folio size
};
// std::invalid_argument naming the field when a name is not known.
Backing backing_of(const std::string& name);

// The array, its destination (allocated and zeroed before the snapshot when
// dest=zeroed; empty when dest=fresh) and the point, for every method.
struct SnapshotContext {
    const Params& params;
    Region& array;
    Region& dest;
    bool query_copies;
    Backing backing;
};
// A method that copies in the parent (uffd, stop) checks its copy here once
// done: snapshot_ok, and the run failed with `differs` when it is not the
// array at the snapshot's start; with check_copy false, nothing checked
// and the record says so (snapshot_check). The fork child checks its own.
void check_copy_in_parent(const SnapshotContext& context, Result& result, const std::string& differs);
using SnapshotFactory = std::unique_ptr<Snapshot> (*)(SnapshotContext);
// Adds a method to the names make_snapshot knows; true, for a static's initializer.
bool register_method(const char* name, SnapshotFactory factory);
// The method's snapshot; nullptr for none (the baseline takes none);
// std::invalid_argument naming the method when no file registered it.
std::unique_ptr<Snapshot> make_snapshot(const std::string& method, SnapshotContext context);
// In a method's file, after its Snapshot class: makes it method `name`
// (the name plan/methods.py gives it).
#define COWSNAP_METHOD(name, Class)                               \
    [[maybe_unused]] const bool registered_##Class = register_method( \
        name, [](SnapshotContext context) -> std::unique_ptr<Snapshot> { return std::make_unique<Class>(context); })

// Allocates a destination for the array as `params.alloc` and `backing` ask.
Region allocate_destination(const Params& params, const Region& array, bool zeroed);

void fail(Result& result, const std::string& reason);  // the first reason wins

}  // namespace cowsnap::detail
