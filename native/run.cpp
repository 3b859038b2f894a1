// One point, phase by phase: reference costs, fill, snapshot, writers.
#include "internal.h"

#include <sys/mman.h>
#include <sys/wait.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

namespace cowsnap {

using namespace detail;

namespace {

constexpr std::size_t mib = 1024 * 1024;

// Unmaps a region however the run ends.
struct Mapped {
    Region region;
    ~Mapped() { unmap_region(region); }
};

// Samples the pages of the array still shared with the child: once before
// the writers start (so the first sample never races them and stays outside
// their timed phase), then every interval from their start until stop().
class SharingSampler {
public:
    SharingSampler(const Region& array, long interval_ms, Result& result)
        : array_(array), interval_(interval_ms), result_(result) {
        if (interval_ms > 0) sample();
    }
    void start(clock::time_point writers_start) {
        writers_start_ = writers_start;
        if (interval_.count() > 0) thread_ = std::thread([this] { loop(); });
    }
    void stop() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopped_ = true;
        }
        wake_.notify_all();
        if (!thread_.joinable()) return;  // never started: nothing to report
        thread_.join();
        sample();  // the state the writers left behind
        // Times relative to the writers' start: the first sample is slightly negative.
        for (const auto& [at, shared] : samples_) {
            result_.sharing_s.push_back(seconds_between(writers_start_, at));
            result_.sharing_pages.push_back(double(shared));
        }
    }
    ~SharingSampler() { stop(); }

private:
    void sample() {
        const long shared = shared_pages(array_.data, array_.bytes);
        samples_.emplace_back(clock::now(), shared);
    }
    void loop() {
        std::unique_lock<std::mutex> lock(mutex_);
        while (!wake_.wait_for(lock, interval_, [this] { return stopped_; })) sample();
    }
    const Region& array_;
    std::chrono::milliseconds interval_;
    Result& result_;
    clock::time_point writers_start_;
    std::vector<std::pair<clock::time_point, long>> samples_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopped_ = false;
    std::thread thread_;
};

// MADV_POPULATE_WRITE over part of the array: breaks COW in one kernel loop
// instead of one fault per page.
std::string populate_write(element* data, std::size_t offset, std::size_t length) {
    if (madvise(reinterpret_cast<char*>(data) + offset, length, MADV_POPULATE_WRITE) == 0) return "";
    return std::string("MADV_POPULATE_WRITE: ") + std::strerror(errno);
}

std::string describe_child_end(const ChildOutcome& child, double timeout_s) {
    if (child.timed_out) return "child timed out after " + std::to_string(timeout_s) + " s and was killed";
    if (WIFSIGNALED(child.wait_status))
        return std::string("child killed by signal ") + std::to_string(WTERMSIG(child.wait_status)) +
               " (" + strsignal(WTERMSIG(child.wait_status)) + ")";
    if (WIFEXITED(child.wait_status) && WEXITSTATUS(child.wait_status) != 0)
        return "child exited with status " + std::to_string(WEXITSTATUS(child.wait_status));
    if (!child.reported) return "child exited without reporting its copy";
    if (!child.report.snapshot_ok) return "snapshot inconsistent: the copy differs from the array at fork time";
    return "";
}

// Counters over [from, to) of the writers' phase, keys suffixed. The phase
// starts when the writers are released and ends when the last one finishes.
void put_phase(Result& result, const Mark& from, const Mark& to, const std::string& suffix) {
    put_vmstat_delta(result.values, from.vmstat, to.vmstat, suffix);
    put_usage(result.values, "parent", to.self - from.self, suffix);
    result.values["writers_s" + suffix] = seconds_between(from.time, to.time);
}

void fail(Result& result, const std::string& reason) {
    if (reason.empty() || result.status == "failed") return;
    result.status = "failed";
    result.reason = reason;
}

// Maps and fills the array as asked, then reads back what the kernel did;
// NotApplied when a setting did not take effect.
void prepare_array(const Params& p, Mapped& array, Result& result) {
    auto& v = result.values;
    const std::size_t bytes = std::size_t(p.size_mib) * mib;
    array.region = map_region(p.backing, bytes, p.populate == "map", nullptr);
    apply_memory_policy(array.region.data, bytes, p.numa_mem);
    const long mthp_kib = p.backing.rfind("mthp-", 0) == 0 ? std::stol(p.backing.substr(5)) : 0;
    const long mthp_before = mthp_kib ? mthp_fault_allocs(mthp_kib) : 0;
    const Vmstat vmstat_before = read_vmstat();
    const auto t0 = clock::now();
    fill_fork_time_values(array.region);
    v["fill_s"] = seconds_between(t0, clock::now());
    v["fill_thp_fault_alloc"] = double(read_vmstat().at("thp_fault_alloc") - vmstat_before.at("thp_fault_alloc"));
    v["huge_kib"] = double(anon_huge_kib(array.region.data));
    result.effective["numa_mem_effective"] = memory_policy_of(array.region.data);
    result.effective["numa_nodes_used"] = nodes_of(array.region.data, bytes);

    if (p.backing == "thp" && v["huge_kib"] == 0)
        throw NotApplied("backing=thp: no huge pages after the fill (AnonHugePages 0 kB)");
    if (p.backing == "4k" && v["huge_kib"] > 0)
        throw NotApplied("backing=4k: " + std::to_string(long(v["huge_kib"])) + " kB of huge pages after the fill");
    if (mthp_kib) {
        v["mthp_fault_alloc"] = double(mthp_fault_allocs(mthp_kib) - mthp_before);
        if (v["mthp_fault_alloc"] <= 0) throw NotApplied("backing=" + p.backing + ": no mTHP folio allocated by the fill");
    }
    const std::string policy = result.effective["numa_mem_effective"];
    const std::string wanted = p.numa_mem.substr(0, p.numa_mem.find(':'));
    if (policy.rfind(wanted, 0) != 0)
        throw NotApplied("numa_mem=" + p.numa_mem + ": the array's policy reads back as " + policy);
}

void run_point(const Params& p, Result& result) {
    auto& v = result.values;
    const std::size_t bytes = std::size_t(p.size_mib) * mib;
    const std::size_t batch = std::size_t(p.batch_kib) * 1024;

    v["fork_empty_s"] = fork_empty_seconds();
    if (p.memcpy_mib > 0) v["memcpy_gbps"] = memcpy_gbps(std::size_t(p.memcpy_mib) * mib);
    v["delayacct_effective"] = delay_accounting_on();

    Mapped array;
    prepare_array(p, array, result);
    v["page_bytes"] = double(array.region.page_bytes);
    v["pages"] = double(bytes / array.region.page_bytes);
    v["batches"] = double((bytes + batch - 1) / batch);

    Mapped dest;
    if (p.method == "stop" || p.method == "uffd" || (p.method == "fork" && p.dest == "prefork")) {
        // As in the seed: the destination exists, zeroed, before the snapshot.
        dest.region = map_region(p.backing, bytes, p.populate == "map", nullptr);
        std::memset(dest.region.data, 0, bytes);
        if (p.method == "fork" && p.dontfork && madvise(dest.region.data, bytes, MADV_DONTFORK) != 0)
            throw std::runtime_error(std::string("MADV_DONTFORK: ") + std::strerror(errno));
    }

    std::optional<ForkSnapshot> fork;
    std::optional<UffdSnapshot> uffd;
    if (p.method == "fork") {
        fork.emplace(p, array.region, dest.region);
        v["fork_s"] = fork->fork();
    }
    if (p.method == "uffd") uffd.emplace(p, array.region, dest.region);

    // The moment the snapshot ended (fork: the parent saw the child exit;
    // uffd: the last batch was copied), and helpers beside the writers.
    std::promise<Mark> end_promise;
    std::shared_future<Mark> ended = end_promise.get_future().share();
    ChildOutcome child;
    std::vector<std::thread> helpers;
    std::mutex populate_mutex;
    double populate_s = 0;
    std::string populate_error;
    auto timed_populate = [&](std::size_t offset, std::size_t length) {
        const auto t = clock::now();
        std::string error = populate_write(array.region.data, offset, length);
        std::lock_guard<std::mutex> lock(populate_mutex);
        populate_s += seconds_between(t, clock::now());
        if (populate_error.empty()) populate_error = error;
    };
    Writers writers(array.region, p);  // created now, started below
    auto wait_for_end = [&] {
        Mark end_mark;
        if (fork) {
            child = fork->wait();
            end_mark = child.exit_mark;
        } else {
            end_mark = uffd->finish();
        }
        writers.snapshot_ended();
        end_promise.set_value(end_mark);
    };

    // Started first: the child blocks once the pipe of released batches is full.
    if (fork && p.populate == "write-after-release")
        helpers.emplace_back([&, fd = fork->release_fd()] {
            std::uint64_t index;
            while (read(fd, &index, sizeof index) == sizeof index)
                timed_populate(index * batch, std::min(batch, bytes - index * batch));
        });
    const bool snapshot = fork || uffd;
    if (uffd) uffd->start();
    if (snapshot) {
        if (p.start == "after_child") wait_for_end();
        else helpers.emplace_back(wait_for_end);
        if (p.populate == "write-after-exit" && p.start == "with_child")
            helpers.emplace_back([&] {
                ended.wait();
                timed_populate(0, bytes);
            });
    }

    SharingSampler sampler(array.region, fork ? p.sharing_interval_ms : 0, result);
    const Mark start = mark_now();
    sampler.start(start.time);
    // Writers that start after the snapshot ended find the array populated:
    // the populate call is part of their phase.
    if (snapshot && p.start == "after_child" && p.populate == "write-after-exit") timed_populate(0, bytes);
    if (p.method == "stop") {
        // Stop the world: the writers wait while the copiers copy; the pause
        // is part of their phase.
        const auto t0 = clock::now();
        copy_batches(array.region, dest.region.data, batch, p.copiers, [](std::size_t) {}, false);
        v["pause_s"] = seconds_between(t0, clock::now());
    }
    writers.start();
    const WriterTotals totals = writers.finish();
    const Mark end = mark_now();
    sampler.stop();
    if (fork) fork->release_hold();
    for (auto& helper : helpers) helper.join();

    put_usage(v, "writer", totals.usage);
    if (snapshot) {
        put_usage(v, "writer", totals.usage_before_end, "_before_exit");
        put_usage(v, "writer", totals.usage - totals.usage_before_end, "_after_exit");
    }
    if (totals.copies.ok) {
        v["writer_wpcopy_count"] = totals.copies.count;
        v["writer_wpcopy_delay_s"] = totals.copies.delay_s;
    }
    put_phase(result, start, end, "");
    if (snapshot) {
        const Mark& ended_at = ended.get();
        // Split the writers' phase where the snapshot ended.
        const Mark& split = ended_at.time <= start.time ? start : ended_at.time >= end.time ? end : ended_at;
        put_phase(result, start, split, "_before_exit");
        put_phase(result, split, end, "_after_exit");
        v["child_reaped_s"] = seconds_between(start.time, ended_at.time);
    }
    if (p.method == "stop") {
        v["snapshot_ok"] = holds_fork_time_values(dest.region.data, 0, array.region.elements());
        if (!v["snapshot_ok"]) fail(result, "snapshot inconsistent: the copy differs from the array");
    }
    if (uffd) {
        v["uffd_copy_s"] = uffd->copy_s();
        v["uffd_faults"] = double(uffd->faults());
        v["snapshot_ok"] = holds_fork_time_values(dest.region.data, 0, array.region.elements());
        if (!v["snapshot_ok"]) fail(result, "snapshot inconsistent: the copy differs from the array at its start");
    }
    if (fork) {
        put_usage(v, "child", child.usage);
        v["snapshot_ok"] = child.reported && child.report.snapshot_ok;
        if (child.reported) {
            v["child_copy_s"] = child.report.copy_s;
            v["child_check_s"] = child.report.check_s;
            if (child.report.copies.ok) {
                v["child_wpcopy_count"] = child.report.copies.count;
                v["child_wpcopy_delay_s"] = child.report.copies.delay_s;
            }
        }
        fail(result, describe_child_end(child, p.timeout_s));
    }
    if (p.populate == "write-after-exit" || p.populate == "write-after-release") {
        v["populate_s"] = populate_s;
        fail(result, populate_error);
    }
}

}  // namespace

Result run(const Params& params) {
    Result result;
    result.status = "ok";
    try {
        run_point(params, result);
    } catch (const NotApplied& error) {
        result.status = "skipped";
        result.reason = error.what();
    } catch (const std::exception& error) {
        result.status = "failed";
        result.reason = error.what();
    }
    return result;
}

}  // namespace cowsnap
