// One point, measured the same way for every snapshot method: the harness
// owns the array, the writers, the marks and the split of the writers'
// phase where the snapshot ended; a method only takes its snapshot.
//
// The timed span starts at one instant for every method, just before the
// snapshot begins (the method's Snapshot::begin()), and ends when the
// last writer finishes. Everything that is not the work measured (threads,
// pipes, counters) is made or read outside it.
#include "internal.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

namespace cowsnap::detail {

namespace {

constexpr std::size_t mib = 1024 * 1024;
// The fresh-page probe's mapping: 1,024 pages, about 1 ms of faults.
constexpr std::size_t PROBE_BYTES = 4 * mib;

// The process's page-table memory (VmPTE of /proc/self/status) in KiB, -1
// when it cannot be read: what a fork() copies besides the mappings.
long page_table_kib() {
    std::FILE* status = std::fopen("/proc/self/status", "r");
    if (!status) return -1;
    char line[256];
    long kib = -1;
    while (std::fgets(line, sizeof line, status))
        if (std::sscanf(line, "VmPTE: %ld kB", &kib) == 1) break;
    std::fclose(status);
    return kib;
}

// Samples the pages of the array still shared with the snapshot (for a
// method whose samples_sharing() says so): once the snapshot began, before
// the writers start, then every interval until stop(). Reading pagemap competes with the writers, so runs that
// sample are not timed runs (the tables leave their times out of every
// statistic).
class SharingSampler {
public:
    SharingSampler(const Region& array, long interval_ms, Result& result)
        : array_(array), interval_(interval_ms), result_(result) {
        if (interval_ms > 0) thread_ = std::thread([this] { loop(); });
    }
    void start(clock::time_point writers_start) {
        if (!thread_.joinable()) return;
        sample();
        std::lock_guard<std::mutex> lock(mutex_);
        writers_start_ = writers_start;
        started_ = true;
        wake_.notify_all();
    }
    void stop() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopped_ = true;
        }
        wake_.notify_all();
        if (!thread_.joinable()) return;
        thread_.join();
        if (!started_) return;  // the run failed before its timed span
        sample();               // the state the writers left behind
        // Times relative to the start mark.
        for (const auto& [at, shared] : samples_) {
            result_.sharing_s.push_back(seconds_between(writers_start_, at));
            result_.sharing_pages.push_back(double(shared));
        }
    }
    ~SharingSampler() { stop(); }

private:
    void sample() { samples_.emplace_back(clock::now(), shared_pages(array_.data, array_.bytes)); }
    void loop() {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return started_ || stopped_; });
        while (!wake_.wait_for(lock, interval_, [this] { return stopped_; })) sample();
    }
    const Region& array_;
    std::chrono::milliseconds interval_;
    Result& result_;
    clock::time_point writers_start_;
    std::vector<std::pair<clock::time_point, long>> samples_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool started_ = false, stopped_ = false;
    std::thread thread_;
};

// Threads beside the writers (waiting for the snapshot's end, populating):
// created before the timed span, parked until it starts.
class Helpers {
public:
    void add(std::function<void()> work) {
        threads_.emplace_back([this, work] {
            gate_.arrive_and_wait();
            if (!aborted_) work();
        });
        gate_.wait_arrived(int(threads_.size()));
    }
    void start() { gate_.open(); }
    void join() {
        if (!gate_.is_open()) {
            aborted_ = true;
            gate_.open();
        }
        for (auto& thread : threads_)
            if (thread.joinable()) thread.join();
    }
    ~Helpers() { join(); }

private:
    std::vector<std::thread> threads_;
    Gate gate_;
    std::atomic<bool> aborted_{false};
};

// MADV_POPULATE_WRITE over part of the array: breaks COW in one kernel loop
// instead of one fault per page. Sums its time and keeps its first error.
class Populate {
public:
    explicit Populate(Region& array) : array_(array) {}
    void operator()(std::size_t offset, std::size_t length) {
        char* begin = reinterpret_cast<char*>(array_.data) + offset;
        // Whole pages only (an alloc=new array starts inside a page).
        const auto page = array_.page_bytes;
        const auto from = (reinterpret_cast<std::uintptr_t>(begin) + page - 1) / page * page;
        const auto to = (reinterpret_cast<std::uintptr_t>(begin) + length) / page * page;
        if (to <= from) return;
        const auto t = clock::now();
        const int result = madvise(reinterpret_cast<void*>(from), to - from, MADV_POPULATE_WRITE);
        const int error = errno;
        std::lock_guard<std::mutex> lock(mutex_);
        seconds_ += seconds_between(t, clock::now());
        if (result != 0 && error_.empty()) error_ = std::string("MADV_POPULATE_WRITE: ") + std::strerror(error);
    }
    void report(Result& result) {
        result.values["populate_s"] = seconds_;
        fail(result, error_);
    }

private:
    Region& array_;
    std::mutex mutex_;
    double seconds_ = 0;
    std::string error_;
};

// Maps and fills the array as asked, then reads back what the kernel did;
// NotApplied when a setting did not take effect.
void prepare_array(const Params& p, const Backing& backing, OwnedRegion& array, Result& result) {
    auto& v = result.values;
    const std::size_t bytes = std::size_t(p.size_mib) * mib;
    array.region = p.alloc == "new" ? new_region(p.backing, bytes, true)
                                    : map_region(p.backing, bytes, p.populate == "map", nullptr);
    Region& a = array.region;
    apply_memory_policy(a.aligned_begin(), a.aligned_bytes(), p.numa_mem);
    const long mthp_kib = backing.kind == Backing::mthp ? backing.mthp_kib : 0;
    const long mthp_before = mthp_kib ? mthp_fault_allocs(mthp_kib) : 0;
    const Vmstat vmstat_before = read_vmstat();
    const auto t0 = clock::now();
    fill_fork_time_values(a);
    v["fill_s"] = seconds_between(t0, clock::now());
    const int fill_node = current_node();
    v["fill_thp_fault_alloc"] = double(read_vmstat()["thp_fault_alloc"] - vmstat_before.at("thp_fault_alloc"));
    v["huge_kib"] = double(anon_huge_kib(a.aligned_begin()));
    v["page_bytes"] = double(a.page_bytes);
    v["pages"] = double(a.pages());
    const auto shares = node_shares(a.aligned_begin(), a.aligned_bytes());
    result.effective["numa_mem_effective"] = memory_policy_of(a.aligned_begin());
    result.effective["numa_nodes_used"] = describe_shares(shares);

    // At least 90% of the array backed as asked, from its own mapping.
    const double huge_share = v["huge_kib"] * 1024 / double(bytes);
    if (backing.kind == Backing::thp && huge_share < 0.9)
        throw NotApplied("backing=thp: " + std::to_string(int(100 * huge_share)) +
                         "% of the array in huge pages after the fill (AnonHugePages), 90% needed");
    if (backing.kind == Backing::base_pages && v["huge_kib"] > 0)
        throw NotApplied("backing=4k: " + std::to_string(long(v["huge_kib"])) + " kB of huge pages after the fill");
    if (mthp_kib) {
        v["mthp_fault_alloc"] = double(mthp_fault_allocs(mthp_kib) - mthp_before);
        const double mthp_share = v["mthp_fault_alloc"] * mthp_kib * 1024 / double(bytes);
        if (v["huge_kib"] > 0 && mthp_kib < 2048)
            throw NotApplied("backing=" + p.backing + ": " + std::to_string(long(v["huge_kib"])) +
                             " kB of PMD huge pages after the fill, not " + std::to_string(mthp_kib) + " kB folios");
        if (mthp_share < 0.9)
            throw NotApplied("backing=" + p.backing + ": " + std::to_string(int(100 * mthp_share)) + "% of the array in " +
                             std::to_string(mthp_kib) + " kB folios after the fill, 90% needed");
    }
    const std::string policy = result.effective["numa_mem_effective"];
    const std::string wanted = p.numa_mem.substr(0, p.numa_mem.find(':'));
    if (policy.rfind(wanted, 0) != 0)
        throw NotApplied("numa_mem=" + p.numa_mem + ": the array's policy reads back as " + policy);
    if (std::string mismatch = placement_mismatch(p.numa_mem, shares, fill_node); !mismatch.empty())
        throw NotApplied(mismatch);
}

// Reference costs, before the array exists; whether the writers' copies
// can be counted (delay accounting on).
bool measure_references(const Params& p, Result& result) {
    auto& v = result.values;
    v["process_mappings"] = double(mapping_count());
    v["fork_empty_s"] = fork_empty_seconds();
    if (p.memcpy_mib > 0) v["memcpy_gbps"] = memcpy_gbps(std::size_t(p.memcpy_mib) * mib);
    const bool query_copies = delay_accounting_on();
    v["delayacct_effective"] = query_copies;
    return query_copies;
}

// Counters over [from, to) of the writers' phase, keys suffixed.
void put_phase(Result& result, const Mark& from, const Mark& to, const std::string& suffix) {
    put_vmstat_delta(result, from.vmstat, to.vmstat, suffix);
    put_usage(result, "parent", to.self - from.self, suffix);
    result.values["writers_s" + suffix] = seconds_between(from.time, to.time);
}

// The writers' write latencies: the whole phase, and with a snapshot the
// phase each write started in; the longest first write (it waited for the
// snapshot to begin).
void put_write_latency(Result& result, const Writers::Totals& totals, bool phased) {
    LatencyHistogram all = totals.latency_during;
    all += totals.latency_after;
    put_latency(result, all, "");
    if (phased) {
        put_latency(result, totals.latency_during, "_during_snapshot");
        put_latency(result, totals.latency_after, "_after_snapshot");
    }
    if (totals.first_write_ns) result.values["write_first_s"] = double(totals.first_write_ns) * 1e-9;
}

// The moment the snapshot ended (what the method's Snapshot::end() returned),
// set by the thread that waited for it.
class EndMark {
public:
    void set(const Mark& mark) {
        std::lock_guard<std::mutex> lock(mutex_);
        mark_ = mark;
        signal_.notify_all();
    }
    void wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        signal_.wait(lock, [&] { return mark_.has_value(); });
    }
    const Mark& get() const { return *mark_; }

private:
    std::optional<Mark> mark_;
    std::mutex mutex_;
    std::condition_variable signal_;
};

// The writers' phase: from just before the snapshot begins to the last
// writer's end.
struct Phase {
    Mark start, end;
    Writers::Totals totals;
};

// One point's threads and instruments around its snapshot (none for the
// baseline): made before the timed span, parked until it starts.
class PointRun {
public:
    PointRun(const Params& p, Region& array, Snapshot* snapshot, bool query_copies, Result& result)
        : p_(p), array_(array), snapshot_(snapshot), result_(result),
          writers_wait_(snapshot && snapshot->writers_wait()), writers_(array, p, query_copies), populate_(array) {
        if (std::string error = writers_.placement_error(); !error.empty()) throw NotApplied(error);
        const std::size_t bytes = array.bytes, batch = std::size_t(p.batch_kib) * 1024;
        if (snapshot && !writers_wait_) helpers_.add([this] { wait_for_end(); });
        // touched_during: the snapshot may end once the writers wrote their share.
        if (snapshot) writers_.on_share_written([snapshot] { snapshot->writers_done(); });
        if (snapshot && p.populate == "write-after-release")
            helpers_.add([this, bytes, batch, fd = snapshot->release_fd()] {
                std::uint64_t index;
                while (read(fd, &index, sizeof index) == sizeof index)
                    populate_(index * batch, std::min(batch, bytes - index * batch));
            });
        if (snapshot && p.populate == "write-after-exit" && !writers_wait_)
            helpers_.add([this, bytes] {
                end_.wait();
                populate_(0, bytes);
            });
        sampler_.emplace(array, snapshot && snapshot->samples_sharing() ? p.sharing_interval_ms : 0, result);
    }

    // ---- the timed span: it starts at one instant for every method, just
    // before the snapshot begins, and ends when the last writer finishes.
    Phase timed_span() {
        const Mark start = mark_start();
        if (snapshot_) snapshot_->begin();
        result_.values["snapshot_pause_s"] = seconds_between(start.time, clock::now());
        helpers_.start();  // they wait for the snapshot begun above
        sampler_->start(start.time);
        if (writers_wait_) {
            wait_for_end();
            if (p_.populate == "write-after-exit") populate_(0, array_.bytes);
        }
        writers_.start(start.time);
        const Writers::Totals totals = writers_.finish();
        Mark end = mark_now();
        end.time = totals.last_end;
        return {start, end, totals};
    }

    // After the span: stop sampling, let the snapshot go, join the helpers.
    void wind_down() {
        sampler_->stop();
        if (snapshot_) snapshot_->writers_done();
        helpers_.join();
    }

    // The writers' phase, split where the snapshot ended, and what the
    // snapshot and the populating report.
    void report(const Phase& phase) {
        Result& result = result_;
        // What only the method knows, for the tables (plan/methods.py holds the same).
        result.values["writers_wait"] = writers_wait_;
        result.values["samples_sharing"] = snapshot_ && snapshot_->samples_sharing();
        put_thread_counters(result, "writer", phase.totals.all);
        result.effective["writer_cpus"] = phase.totals.cpus;
        put_phase(result, phase.start, phase.end, "");
        const Writers::Touched touched = writers_.pages_touched();
        result.values["writes"] = phase.totals.writes;
        result.values["pages_written"] = touched.all;
        if (p_.touched_during != "free") result.values["writers_paused_s"] = phase.totals.paused_s;
        if (p_.write_latency_kib > 0) put_write_latency(result, phase.totals, snapshot_ != nullptr);
        if (snapshot_) {
            const Mark& at = end_.get();
            const Mark& split = at.time <= phase.start.time ? phase.start : at.time >= phase.end.time ? phase.end : at;
            put_phase(result, phase.start, split, "_during_snapshot");
            put_phase(result, split, phase.end, "_after_snapshot");
            put_thread_counters(result, "writer", phase.totals.during_snapshot, "_during_snapshot");
            put_thread_counters(result, "writer", phase.totals.all - phase.totals.during_snapshot, "_after_snapshot");
            result.values["pages_written_during_snapshot"] = touched.during_snapshot;
            result.values["snapshot_end_s"] = seconds_between(phase.start.time, at.time);
            snapshot_->report(result);
        }
        if (p_.populate == "write-after-exit" || p_.populate == "write-after-release") populate_.report(result);
    }

private:
    void wait_for_end() {
        const Mark mark = snapshot_->end();
        writers_.snapshot_ended();
        end_.set(mark);
    }

    const Params& p_;
    Region& array_;
    Snapshot* snapshot_;
    Result& result_;
    const bool writers_wait_;
    Writers writers_;
    Populate populate_;
    EndMark end_;
    Helpers helpers_;
    std::optional<SharingSampler> sampler_;
};

// One point: reference costs, the array, the snapshot's preparations, the
// timed span, then what it all measured.
void measure_point(const Params& p, Result& result) {
    const Backing backing = backing_of(p.backing);
    // First, before anything is allocated: the memory the run will allocate,
    // brought back from the host (warm_mib, 0: the machine as it is).
    if (p.warm_mib > 0) {
        result.values["warm_s"] = warm_memory(std::size_t(p.warm_mib) * mib);
        result.values["warm_mib_effective"] = double(p.warm_mib);
    }
    const bool query_copies = measure_references(p, result);

    OwnedRegion array, dest;
    prepare_array(p, backing, array, result);
    result.values["batches"] = double(batch_count(p, array.region));
    const auto snapshot = make_snapshot(p.method, {p, array.region, dest.region, query_copies, backing});
    // The memory the snapshot costs, for every method: what the process
    // holds now, before the destination, against the peak over the snapshot.
    SnapshotMemory memory(backing);
    // dest=zeroed, as in the seed: the destination exists, zeroed, before
    // the snapshot; dest=fresh: the method allocates it when it copies.
    if (snapshot && p.dest == "zeroed") dest.region = allocate_destination(p, array.region, true);
    if (snapshot) snapshot->prepare();
    // Page tables just before the timed span, for every method (absent when unreadable).
    if (const long kib = page_table_kib(); kib >= 0) result.values["vm_pte_kib"] = double(kib);
    // What a fresh page costs just before the snapshot, for every method.
    const FreshPageCost fresh = fresh_page_cost(PROBE_BYTES);
    result.values["fresh_page_us"] = fresh.first_touch_us;
    result.values["touched_page_us"] = fresh.second_touch_us;

    PointRun run(p, array.region, snapshot.get(), query_copies, result);
    memory.reset_peak();  // after the probe freed its pages
    const Phase phase = run.timed_span();
    run.wind_down();
    memory.report(result);  // the snapshot ended: a child has been reaped
    run.report(phase);
}

}  // namespace

Result measure(const Params& params) {
    Result result;
    result.status = "ok";
    try {
        measure_point(params, result);
    } catch (const NotApplied& error) {
        result.status = "skipped";
        result.reason = error.what();
    } catch (const std::exception& error) {
        result.status = "failed";
        result.reason = error.what();
    }
    return result;
}

}  // namespace cowsnap::detail
