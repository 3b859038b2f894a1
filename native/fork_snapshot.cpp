// The seed's snapshot: fork, and let the child copy the array it inherited.
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
#include <thread>

namespace cowsnap::detail {

namespace {

void close_fd(int& fd) {
    if (fd >= 0) close(fd);
    fd = -1;
}

// Checks the copy with `threads` threads, each a contiguous slice.
bool copy_is_consistent(const element* copy, std::size_t n, int threads) {
    std::atomic<bool> ok{true};
    std::vector<std::thread> pool;
    for (int tid = 0; tid < threads; ++tid)
        pool.emplace_back([&, tid] {
            const std::size_t first = n * tid / threads, last = n * (tid + 1) / threads;
            if (!holds_fork_time_values(copy, first, last - first)) ok = false;
        });
    for (auto& thread : pool) thread.join();
    return ok;
}

// The child: copy, check, report, maybe hold the snapshot, exit. Never returns.
[[noreturn]] void child_main(const Params& p, Region& array, Region& dest, int report_fd,
                             int hold_fd, int release_fd) {
    element* target = dest.data;
    place_thread(p.numa_copiers);  // copier threads inherit this placement
    Region own;
    if (p.dest == "child") {
        own = map_region(p.backing, array.bytes, false, nullptr);
        target = own.data;
    } else if (p.dontfork) {
        // MADV_DONTFORK kept the prefork destination out of this process:
        // map fresh memory at the same address.
        own = map_region(p.backing, dest.bytes, false, dest.map_base);
        target = own.data;
    }
    const std::size_t batch = std::size_t(p.batch_kib) * 1024;
    ChildReport report;
    const auto t0 = clock::now();
    report.copies = copy_batches(array, target, batch, p.copiers, [&](std::size_t b) {
        char* src = reinterpret_cast<char*>(array.data) + b * batch;
        const std::size_t length = std::min(batch, array.bytes - b * batch);
        if (p.release == "munmap") munmap(src, length);
        if (p.release == "dontneed") madvise(src, length, MADV_DONTNEED);
        if (release_fd >= 0) {
            const std::uint64_t index = b;
            (void)!write(release_fd, &index, sizeof index);
        }
    }, delay_accounting_on());
    const auto t1 = clock::now();
    report.copy_s = seconds_between(t0, t1);
    report.snapshot_ok = copy_is_consistent(target, array.elements(), p.copiers);
    report.check_s = seconds_between(t1, clock::now());
    (void)!write(report_fd, &report, sizeof report);
    close_fd(release_fd);
    if (hold_fd >= 0) {
        char c;
        while (read(hold_fd, &c, 1) > 0) {
        }  // end of file: the parent's writers are done
    }
    if (p.exit == "early") _exit(0);
    // Ordinary teardown: free what the child mapped, then exit() with its
    // atexit handlers and static destructors.
    unmap_region(own);
    std::exit(0);
}

void make_pipe(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
}

}  // namespace

ForkSnapshot::ForkSnapshot(const Params& params, Region& array, Region& dest)
    : params_(params), array_(array), dest_(dest) {}

ForkSnapshot::~ForkSnapshot() {
    close_fd(report_read_);
    close_fd(hold_write_);
    close_fd(release_read_);
    if (pid_ > 0) {  // only on an error path: the child was never reaped
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
}

double ForkSnapshot::fork() {
    int report[2] = {-1, -1}, hold[2] = {-1, -1}, release[2] = {-1, -1};
    make_pipe(report);
    if (params_.hold == "writers") make_pipe(hold);
    if (params_.populate == "write-after-release") make_pipe(release);
    fork_time_ = clock::now();
    pid_ = ::fork();
    const double seconds = seconds_between(fork_time_, clock::now());
    if (pid_ == 0) {
        close(report[0]);
        if (hold[1] >= 0) close(hold[1]);
        if (release[0] >= 0) close(release[0]);
        child_main(params_, array_, dest_, report[1], hold[0], release[1]);
    }
    const int fork_errno = errno;
    close(report[1]);
    if (hold[0] >= 0) close(hold[0]);
    if (release[1] >= 0) close(release[1]);
    report_read_ = report[0];
    hold_write_ = hold[1];
    release_read_ = release[0];
    if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(fork_errno));
    return seconds;
}

void ForkSnapshot::release_hold() { close_fd(hold_write_); }

ChildOutcome ForkSnapshot::wait() {
    ChildOutcome out;
    const int pidfd = int(syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd >= 0) {
        const double left = params_.timeout_s - seconds_between(fork_time_, clock::now());
        pollfd pfd{pidfd, POLLIN, 0};
        int ready;
        do ready = poll(&pfd, 1, left > 0 ? int(left * 1000) : 0);
        while (ready < 0 && errno == EINTR);
        if (ready == 0) {
            out.timed_out = true;
            kill(pid_, SIGKILL);
        }
        close(pidfd);
    }
    rusage ru{};
    int status = 0;
    while (wait4(pid_, &status, 0, &ru) < 0 && errno == EINTR) {
    }
    out.exit_mark = mark_now();
    pid_ = -1;
    out.reaped = true;
    out.wait_status = status;
    out.usage = usage_from(&ru);
    out.reported = read(report_read_, &out.report, sizeof out.report) == ssize_t(sizeof out.report);
    return out;
}

}  // namespace cowsnap::detail
