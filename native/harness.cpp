// One point, measured the same way for every snapshot method: the harness
// owns the array, the writers, the marks and the split of the writers'
// phase where the snapshot ended; a method only takes its snapshot.
//
// The timed span starts at one instant for every method, just before the
// snapshot begins (fork call, uffd protect, stop copy), and ends when the
// last writer finishes. Everything that is not the work measured (threads,
// pipes, counters) is made or read outside it.
#include "internal.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

namespace cowsnap::detail {

namespace {

constexpr std::size_t mib = 1024 * 1024;

// Samples the pages of the array still shared with the child (fork only):
// once the snapshot began, before the writers start, then every interval
// until stop(). Reading pagemap competes with the writers, so runs that
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
void prepare_array(const Params& p, OwnedRegion& array, Result& result) {
    auto& v = result.values;
    const std::size_t bytes = std::size_t(p.size_mib) * mib;
    array.region = p.alloc == "new" ? new_region(p.backing, bytes, true)
                                    : map_region(p.backing, bytes, p.populate == "map", nullptr);
    Region& a = array.region;
    apply_memory_policy(a.aligned_begin(), a.aligned_bytes(), p.numa_mem);
    const long mthp_kib = p.backing.rfind("mthp-", 0) == 0 ? std::stol(p.backing.substr(5)) : 0;
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
    if (p.backing == "thp" && huge_share < 0.9)
        throw NotApplied("backing=thp: " + std::to_string(int(100 * huge_share)) +
                         "% of the array in huge pages after the fill (AnonHugePages), 90% needed");
    if (p.backing == "4k" && v["huge_kib"] > 0)
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

std::unique_ptr<Snapshot> make_snapshot(const Params& p, SnapshotContext context) {
    if (p.method == "fork") return fork_snapshot(context);
    if (p.method == "uffd") return uffd_snapshot(context);
    if (p.method == "stop") return stop_snapshot(context);
    return nullptr;  // none: the baseline
}

// Counters over [from, to) of the writers' phase, keys suffixed.
void put_phase(Result& result, const Mark& from, const Mark& to, const std::string& suffix) {
    put_vmstat_delta(result, from.vmstat, to.vmstat, suffix);
    put_usage(result, "parent", to.self - from.self, suffix);
    result.values["writers_s" + suffix] = seconds_between(from.time, to.time);
}

void measure_point(const Params& p, Result& result) {
    auto& v = result.values;
    // Reference costs, before the array exists.
    v["process_mappings"] = double(mapping_count());
    v["fork_empty_s"] = fork_empty_seconds();
    if (p.memcpy_mib > 0) v["memcpy_gbps"] = memcpy_gbps(std::size_t(p.memcpy_mib) * mib);
    const bool query_copies = delay_accounting_on();
    v["delayacct_effective"] = query_copies;

    OwnedRegion array, dest;
    prepare_array(p, array, result);
    v["batches"] = double(batch_count(p, array.region));
    // dest=zeroed, as in the seed: the destination exists, zeroed, before
    // the snapshot; dest=fresh: the method allocates it when it copies.
    if (p.method != "none" && p.dest == "zeroed") dest.region = allocate_destination(p, array.region, true);

    const auto snapshot = make_snapshot(p, {p, array.region, dest.region, query_copies});
    if (snapshot) snapshot->prepare();
    Writers writers(array.region, p, query_copies);
    if (std::string error = writers.placement_error(); !error.empty()) throw NotApplied(error);

    // The moment the snapshot ended (fork: the parent saw the child exit;
    // uffd: the last batch was copied; stop: the copy was done).
    std::optional<Mark> ended;
    std::mutex ended_mutex;
    std::condition_variable ended_signal;
    auto wait_for_end = [&] {
        const Mark mark = snapshot->end();
        writers.snapshot_ended();
        std::lock_guard<std::mutex> lock(ended_mutex);
        ended = mark;
        ended_signal.notify_all();
    };
    auto wait_until_ended = [&] {
        std::unique_lock<std::mutex> lock(ended_mutex);
        ended_signal.wait(lock, [&] { return ended.has_value(); });
    };
    Populate populate(array.region);
    const std::size_t bytes = array.region.bytes, batch = std::size_t(p.batch_kib) * 1024;
    const bool writers_wait = snapshot && (p.start == "after_child" || p.method == "stop");
    Helpers helpers;
    if (snapshot && !writers_wait) helpers.add(wait_for_end);
    if (snapshot && p.populate == "write-after-release")
        helpers.add([&, fd = snapshot->release_fd()] {
            std::uint64_t index;
            while (read(fd, &index, sizeof index) == sizeof index)
                populate(index * batch, std::min(batch, bytes - index * batch));
        });
    if (snapshot && p.populate == "write-after-exit" && !writers_wait)
        helpers.add([&] {
            wait_until_ended();
            populate(0, bytes);
        });
    SharingSampler sampler(array.region, p.method == "fork" ? p.sharing_interval_ms : 0, result);

    // ---- the timed span
    const Mark start = mark_start();
    if (snapshot) snapshot->begin();
    v["snapshot_pause_s"] = seconds_between(start.time, clock::now());
    helpers.start();  // they wait for the snapshot begun above
    sampler.start(start.time);
    if (writers_wait) {
        // The writers start once the snapshot ended; populating the array
        // then is part of their phase.
        wait_for_end();
        if (p.populate == "write-after-exit") populate(0, bytes);
    }
    writers.start();
    const Writers::Totals totals = writers.finish();
    Mark end = mark_now();
    end.time = totals.last_end;
    // ---- end of the timed span

    sampler.stop();
    if (snapshot) snapshot->writers_done();
    helpers.join();

    put_thread_counters(result, "writer", totals.all);
    result.effective["writer_cpus"] = totals.cpus;
    put_phase(result, start, end, "");
    if (snapshot) {
        const Mark& at = *ended;
        // Split the writers' phase where the snapshot ended.
        const Mark& split = at.time <= start.time ? start : at.time >= end.time ? end : at;
        put_phase(result, start, split, "_during_snapshot");
        put_phase(result, split, end, "_after_snapshot");
        put_thread_counters(result, "writer", totals.during_snapshot, "_during_snapshot");
        put_thread_counters(result, "writer", totals.all - totals.during_snapshot, "_after_snapshot");
        v["snapshot_end_s"] = seconds_between(start.time, at.time);
        snapshot->report(result);
    }
    if (p.populate == "write-after-exit" || p.populate == "write-after-release") populate.report(result);
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
