// The seed's snapshot: fork, and let the child copy the array it inherited.
//
// Expected cost: the fork() call copies the page tables and write-protects
// every PTE of the array in both processes (about 10-20 ms per GiB of 4 KiB
// pages); then every first write of a parent's writer to a page still shared
// with the child COPIES it (wp_page_copy), and every first write after the
// child let go of the page only REUSES it (a fault, no copy). The child's
// copy into a zeroed destination made before fork COW-faults too.
#include "internal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace cowsnap::detail {

namespace {

void close_fd(int& fd) {
    if (fd >= 0) close(fd);
    fd = -1;
}

void make_pipe(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
}

// What the child sends back through its report pipe: plain bytes.
struct ChildReport {
    double copy_s = 0, check_s = 0;
    int checked = 0, snapshot_ok = 0;
    long release_calls = 0, release_failed = 0;
    int release_errno = 0;  // the first failed release's errno
    char placement_error[200] = {};
    // The copier threads' exact copies, or why they were not counted.
    double copies = 0, copy_delay_s = 0;
    char copies_error[200] = {};
};

// The child: copy, check, report, maybe hold the snapshot, exit. Never returns.
[[noreturn]] void child_main(const SnapshotContext& c, int report_fd, int hold_fd, int release_fd) {
    const Params& p = c.params;
    Region& array = c.array;
    OwnedRegion own;
    element* target = c.dest.data;
    if (p.dest == "fresh") {
        own.region = allocate_destination(p, array, false);
        target = own.region.data;
    } else if (p.dontfork) {
        // MADV_DONTFORK kept the zeroed destination out of this process:
        // map fresh memory at the same address.
        own.region = map_region(p.backing, c.dest.bytes, false, c.dest.map_base);
        target = own.region.data;
    }
    const std::size_t batch = std::size_t(p.batch_kib) * 1024;
    ChildReport report;
    std::atomic<long> calls{0}, failed{0};
    std::atomic<int> first_errno{0};
    // Release as the seed does, checking (and counting) what it did not:
    // the seed's unaligned array makes every munmap fail with EINVAL.
    auto copy_and_release = [&](std::size_t b) {
        copy_batch(array, target, batch, b);
        char* src = reinterpret_cast<char*>(array.data) + b * batch;
        const std::size_t length = std::min(batch, array.bytes - b * batch);
        int result = 0;
        if (p.release == "munmap") result = munmap(src, length);
        if (p.release == "dontneed") result = madvise(src, length, MADV_DONTNEED);
        if (p.release != "none") {
            ++calls;
            if (result != 0) {
                ++failed;
                int none = 0;
                first_errno.compare_exchange_strong(none, errno);
            }
        }
        if (release_fd >= 0) {
            const std::uint64_t index = b;
            (void)!write(release_fd, &index, sizeof index);
        }
    };
    Copiers copiers(p, batch_count(p, array), copy_and_release, c.query_copies);
    std::snprintf(report.placement_error, sizeof report.placement_error, "%s", copiers.placement_error().c_str());
    const auto t0 = clock::now();
    copiers.start();
    const ThreadCounters counted = copiers.join();
    const auto t1 = clock::now();
    report.copy_s = seconds_between(t0, t1);
    if (p.check_copy) {
        report.checked = 1;
        report.snapshot_ok = copy_is_consistent(target, array.elements(), p.copiers);
        report.check_s = seconds_between(t1, clock::now());
    }
    report.release_calls = calls;
    report.release_failed = failed;
    report.release_errno = first_errno;
    report.copies = counted.copies.count;
    report.copy_delay_s = counted.copies.delay_s;
    std::snprintf(report.copies_error, sizeof report.copies_error, "%s", counted.copies.error.c_str());
    (void)!write(report_fd, &report, sizeof report);
    close_fd(release_fd);
    if (hold_fd >= 0) {
        char ch;
        while (read(hold_fd, &ch, 1) > 0) {
        }  // end of file: the parent's writers are done
    }
    if (p.exit == "early") _exit(0);
    // Ordinary teardown: free what the child allocated, then exit() with
    // its atexit handlers and static destructors.
    free_region(own.region);
    std::exit(0);
}

std::string describe_child_end(int wait_status, bool timed_out, bool reported, const ChildReport& report,
                               double timeout_s) {
    if (timed_out) return "child timed out after " + std::to_string(timeout_s) + " s and was killed";
    if (WIFSIGNALED(wait_status))
        return std::string("child killed by signal ") + std::to_string(WTERMSIG(wait_status)) + " (" +
               strsignal(WTERMSIG(wait_status)) + ")";
    if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) != 0)
        return "child exited with status " + std::to_string(WEXITSTATUS(wait_status));
    if (!reported) return "child exited without reporting its copy";
    if (report.checked && !report.snapshot_ok) return "snapshot inconsistent: the copy differs from the array at fork time";
    return "";
}

class ForkSnapshot : public Snapshot {
public:
    explicit ForkSnapshot(SnapshotContext context) : c_(context) {}

    ~ForkSnapshot() override {
        close_fd(report_read_);
        close_fd(hold_write_);
        close_fd(release_read_);
        if (pid_ > 0) {  // only on an error path: the child was never reaped
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }

    void prepare() override {
        const Params& p = c_.params;
        if (p.dest == "zeroed" && p.dontfork &&
            madvise(c_.dest.aligned_begin(), c_.dest.aligned_bytes(), MADV_DONTFORK) != 0)
            throw std::runtime_error(std::string("MADV_DONTFORK: ") + std::strerror(errno));
        if (p.inject == "wipe-on-fork") {
            // Fault injection: the child sees zeros in the first batch, so its
            // check must fail.
            const std::size_t length = std::min(c_.array.aligned_bytes(), std::size_t(p.batch_kib) * 1024);
            if (madvise(c_.array.aligned_begin(), length, MADV_WIPEONFORK) != 0)
                throw NotApplied(std::string("inject=wipe-on-fork: MADV_WIPEONFORK: ") + std::strerror(errno));
        }
        make_pipe(reports_);
        // The child holds its snapshot until the writers are done with it:
        // all their writes (hold=writers), or their share (touched_during).
        if (p.hold == "writers" || p.touched_during != "free") make_pipe(hold_);
        if (p.populate == "write-after-release") make_pipe(release_);
        release_read_ = release_[0];
    }

    void begin() override {
        fork_time_ = clock::now();
        pid_ = ::fork();
        fork_s_ = seconds_between(fork_time_, clock::now());
        if (pid_ == 0) {
            close(reports_[0]);
            if (hold_[1] >= 0) close(hold_[1]);
            if (release_[0] >= 0) close(release_[0]);
            child_main(c_, reports_[1], hold_[0], release_[1]);
        }
        const int fork_errno = errno;
        close(reports_[1]);
        if (hold_[0] >= 0) close(hold_[0]);
        if (release_[1] >= 0) close(release_[1]);
        report_read_ = reports_[0];
        hold_write_ = hold_[1];
        if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(fork_errno));
    }

    // Reaps the child (honouring timeout_s); the moment the parent saw it exit.
    Mark end() override {
        const int pidfd = int(syscall(SYS_pidfd_open, pid_, 0));
        if (pidfd >= 0) {
            const double left = c_.params.timeout_s - seconds_between(fork_time_, clock::now());
            pollfd pfd{pidfd, POLLIN, 0};
            int ready;
            do ready = poll(&pfd, 1, left > 0 ? int(left * 1000) : 0);
            while (ready < 0 && errno == EINTR);
            if (ready == 0) {
                timed_out_ = true;
                kill(pid_, SIGKILL);
            }
            close(pidfd);
        }
        rusage ru{};
        while (wait4(pid_, &wait_status_, 0, &ru) < 0 && errno == EINTR) {
        }
        const Mark exited = mark_now();
        pid_ = -1;
        child_usage_ = usage_from(&ru);
        reported_ = read(report_read_, &report_, sizeof report_) == ssize_t(sizeof report_);
        return exited;
    }

    void writers_done() override { close_fd(hold_write_); }

    int release_fd() const override { return release_read_; }

    bool writers_wait() const override { return c_.params.start == "after_child"; }

    // The child maps the array's pages until it exits: pagemap tells which.
    bool samples_sharing() const override { return true; }

    void report(Result& result) override {
        auto& v = result.values;
        v["fork_s"] = fork_s_;
        put_usage(result, "child", child_usage_);
        if (reported_ && !report_.checked)
            result.effective["snapshot_check"] = NOT_CHECKED;
        else
            v["snapshot_ok"] = reported_ && report_.snapshot_ok;
        if (reported_) {
            v["child_copy_s"] = report_.copy_s;
            if (report_.checked) v["child_check_s"] = report_.check_s;
            v["release_calls"] = double(report_.release_calls);
            v["release_failed"] = double(report_.release_failed);
            if (report_.release_failed)
                result.effective["release_errno"] = strerrorname_np(report_.release_errno)
                                                        ? strerrorname_np(report_.release_errno)
                                                        : std::to_string(report_.release_errno);
            if (!report_.copies_error[0]) {
                v["child_wpcopy_count"] = report_.copies;
                v["child_wpcopy_delay_s"] = report_.copy_delay_s;
            }
            result.effective["child_wpcopy_source"] =
                report_.copies_error[0] ? std::string("not counted: ") + report_.copies_error : "taskstats";
            if (report_.placement_error[0]) throw NotApplied(report_.placement_error);
        }
        fail(result, describe_child_end(wait_status_, timed_out_, reported_, report_, c_.params.timeout_s));
    }

private:
    SnapshotContext c_;
    int reports_[2] = {-1, -1}, hold_[2] = {-1, -1}, release_[2] = {-1, -1};
    int report_read_ = -1, hold_write_ = -1, release_read_ = -1;
    pid_t pid_ = -1;
    clock::time_point fork_time_;
    double fork_s_ = 0;
    int wait_status_ = 0;
    bool timed_out_ = false, reported_ = false;
    ChildReport report_;
    Usage child_usage_;
};

COWSNAP_METHOD("fork", ForkSnapshot);

}  // namespace

}  // namespace cowsnap::detail
