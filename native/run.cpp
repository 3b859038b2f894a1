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

// Samples the pages of the array still shared with the child, every
// interval, from the writers' start until stop().
class SharingSampler {
public:
    SharingSampler(const Region& array, long interval_ms, clock::time_point start, Result& result)
        : array_(array), interval_(interval_ms), start_(start), result_(result) {
        if (interval_ms > 0) thread_ = std::thread([this] { loop(); });
    }
    void stop() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopped_ = true;
        }
        wake_.notify_all();
        if (thread_.joinable()) {
            thread_.join();
            sample();  // the state the writers left behind
        }
    }
    ~SharingSampler() { stop(); }

private:
    void sample() {
        const long shared = shared_pages(array_.data, array_.bytes);
        result_.sharing_s.push_back(seconds_between(start_, clock::now()));
        result_.sharing_pages.push_back(double(shared));
    }
    void loop() {
        std::unique_lock<std::mutex> lock(mutex_);
        while (!stopped_) {
            sample();
            wake_.wait_for(lock, interval_, [this] { return stopped_; });
        }
    }
    const Region& array_;
    std::chrono::milliseconds interval_;
    clock::time_point start_;
    Result& result_;
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

void run_point(const Params& p, Result& result) {
    auto& v = result.values;
    const std::size_t bytes = std::size_t(p.size_mib) * mib;
    const std::size_t batch = std::size_t(p.batch_kib) * 1024;

    v["fork_empty_s"] = fork_empty_seconds();
    if (p.memcpy_mib > 0) v["memcpy_gbps"] = memcpy_gbps(std::size_t(p.memcpy_mib) * mib);

    auto t0 = clock::now();
    Mapped array{map_region(p.backing, bytes, p.populate == "map", nullptr)};
    fill_fork_time_values(array.region);
    v["fill_s"] = seconds_between(t0, clock::now());
    v["page_bytes"] = double(array.region.page_bytes);
    v["pages"] = double(bytes / array.region.page_bytes);
    v["batches"] = double((bytes + batch - 1) / batch);

    Mapped dest;
    if (p.method == "stop" || (p.method == "fork" && p.dest == "prefork")) {
        // As in the seed: the destination exists, zeroed, before the snapshot.
        dest.region = map_region(p.backing, bytes, p.populate == "map", nullptr);
        std::memset(dest.region.data, 0, bytes);
        if (p.method == "fork" && p.dontfork && madvise(dest.region.data, bytes, MADV_DONTFORK) != 0)
            throw std::runtime_error(std::string("MADV_DONTFORK: ") + std::strerror(errno));
    }

    if (p.method == "stop") {
        // Stop the world: the writers wait while the copiers copy.
        t0 = clock::now();
        copy_batches(array.region, dest.region.data, batch, p.copiers, [](std::size_t) {});
        v["pause_s"] = seconds_between(t0, clock::now());
        v["snapshot_ok"] = holds_fork_time_values(dest.region.data, 0, array.region.elements());
        if (!v["snapshot_ok"]) fail(result, "snapshot inconsistent: the copy differs from the array");
    }

    std::optional<ForkSnapshot> snapshot;
    if (p.method == "fork") {
        snapshot.emplace(p, array.region, dest.region);
        v["fork_s"] = snapshot->fork();
    }

    // Helpers that run beside the writers.
    std::promise<ChildOutcome> child_promise;
    std::shared_future<ChildOutcome> child = child_promise.get_future().share();
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

    if (snapshot) {
        if (p.start == "after_child") child_promise.set_value(snapshot->wait());
        else helpers.emplace_back([&] { child_promise.set_value(snapshot->wait()); });
        if (p.populate == "write-after-exit" && p.start == "with_child")
            helpers.emplace_back([&] {
                child.wait();
                timed_populate(0, bytes);
            });
        if (p.populate == "write-after-release")
            helpers.emplace_back([&, fd = snapshot->release_fd()] {
                std::uint64_t index;
                while (read(fd, &index, sizeof index) == sizeof index)
                    timed_populate(index * batch, std::min(batch, bytes - index * batch));
            });
    }

    Writers writers(array.region, p.writers, p.pattern);
    const Mark start = mark_now();
    SharingSampler sampler(array.region, snapshot ? p.sharing_interval_ms : 0, start.time, result);
    // Writers that start after the child exited find the array populated:
    // the populate call is part of their phase.
    if (snapshot && p.start == "after_child" && p.populate == "write-after-exit") timed_populate(0, bytes);
    writers.start();
    const Usage writer_usage = writers.finish();
    const Mark end = mark_now();
    sampler.stop();
    if (snapshot) snapshot->release_hold();
    for (auto& helper : helpers) helper.join();

    put_usage(v, "writer", writer_usage);
    put_phase(result, start, end, "");
    if (snapshot) {
        const ChildOutcome& outcome = child.get();
        // Split the writers' phase where the parent saw the child exit.
        const Mark& split = outcome.exit_mark.time <= start.time ? start
                            : outcome.exit_mark.time >= end.time ? end
                                                                 : outcome.exit_mark;
        put_phase(result, start, split, "_before_exit");
        put_phase(result, split, end, "_after_exit");
        v["child_reaped_s"] = seconds_between(start.time, outcome.exit_mark.time);
        put_usage(v, "child", outcome.usage);
        if (outcome.reported) {
            v["child_copy_s"] = outcome.report.copy_s;
            v["child_check_s"] = outcome.report.check_s;
            v["snapshot_ok"] = outcome.report.snapshot_ok;
        } else {
            v["snapshot_ok"] = 0;
        }
        fail(result, describe_child_end(outcome, p.timeout_s));
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
    } catch (const std::exception& error) {
        result.status = "failed";
        result.reason = error.what();
    }
    return result;
}

}  // namespace cowsnap
