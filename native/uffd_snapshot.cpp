// A fork-free snapshot: userfaultfd write-protect. The array is protected
// in place; copier threads copy batches and unprotect them; a writer that
// hits a protected page waits while the fault handler copies that page's
// batch first. No page-table copy, and no protection left once done.
#include "internal.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace cowsnap::detail {

namespace {

int open_userfaultfd() {
    int fd = int(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    if (fd >= 0) return fd;
    // Where unprivileged_userfaultfd is 0, /dev/userfaultfd (5.11+) still gives one.
    const int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev < 0) return -1;
    fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
    close(dev);
    return fd;
}

[[noreturn]] void not_available(const std::string& what) {
    throw NotApplied("method=uffd: " + what + ": " + std::strerror(errno));
}

}  // namespace

UffdSnapshot::UffdSnapshot(const Params& params, Region& array, Region& dest)
    : params_(params), array_(array), dest_(dest), batch_(std::size_t(params.batch_kib) * 1024),
      state_((array.bytes + batch_ - 1) / batch_) {
    fd_ = open_userfaultfd();
    if (fd_ < 0) not_available("userfaultfd");
    uffdio_api api{};
    api.api = UFFD_API;
    api.features = UFFD_FEATURE_PAGEFAULT_FLAG_WP;
    if (params.backing.rfind("hugetlb-", 0) == 0) api.features |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
    if (ioctl(fd_, UFFDIO_API, &api) != 0) not_available("UFFDIO_API with write-protect");
    uffdio_register reg{};
    reg.range = {reinterpret_cast<__u64>(array.data), array.bytes};
    reg.mode = UFFDIO_REGISTER_MODE_WP;
    if (ioctl(fd_, UFFDIO_REGISTER, &reg) != 0) not_available("UFFDIO_REGISTER");
    if (pipe2(stop_, O_CLOEXEC) != 0) not_available("pipe");
}

UffdSnapshot::~UffdSnapshot() {
    if (handler_.joinable()) finish();
    uffdio_range range{reinterpret_cast<__u64>(array_.data), array_.bytes};
    ioctl(fd_, UFFDIO_UNREGISTER, &range);
    close(fd_);
    close(stop_[0]);
    close(stop_[1]);
}

void UffdSnapshot::protect(std::size_t offset, std::size_t length, bool on) {
    uffdio_writeprotect wp{};
    wp.range = {reinterpret_cast<__u64>(array_.data) + offset, length};
    wp.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0;  // unprotecting wakes the waiters
    if (ioctl(fd_, UFFDIO_WRITEPROTECT, &wp) != 0 && on) not_available("UFFDIO_WRITEPROTECT");
}

// Copies batch b unless someone else has; returns whether this call did.
bool UffdSnapshot::copy_batch(std::size_t b) {
    int pending = 0;
    if (!state_[b].compare_exchange_strong(pending, 1)) return false;
    const std::size_t offset = b * batch_, length = std::min(batch_, array_.bytes - offset);
    std::memcpy(reinterpret_cast<char*>(dest_.data) + offset, reinterpret_cast<const char*>(array_.data) + offset,
                length);
    protect(offset, length, false);
    state_[b] = 2;
    return true;
}

void UffdSnapshot::handle_faults() {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
    while (poll(fds, 2, -1) >= 0 || errno == EINTR) {
        if (fds[1].revents) return;
        if (!(fds[0].revents & POLLIN)) continue;
        uffd_msg msg;
        while (read(fd_, &msg, sizeof msg) == sizeof msg) {
            if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
            ++faults_;
            const std::size_t offset = msg.arg.pagefault.address - reinterpret_cast<__u64>(array_.data);
            if (copy_batch(offset / batch_)) continue;  // its unprotect woke the writer
            // A copier has the batch: its unprotect wakes the writer; if that
            // already happened, this wakes it.
            uffdio_range page{msg.arg.pagefault.address & ~__u64(array_.page_bytes - 1), array_.page_bytes};
            ioctl(fd_, UFFDIO_WAKE, &page);
        }
    }
}

void UffdSnapshot::start() {
    protect(0, array_.bytes, true);
    start_time_ = clock::now();
    handler_ = std::thread([this] { handle_faults(); });
    for (int tid = 0; tid < params_.copiers; ++tid)
        copiers_.emplace_back([this, tid] {
            for (std::size_t b = tid; b < state_.size(); b += params_.copiers) copy_batch(b);
        });
}

Mark UffdSnapshot::finish() {
    for (auto& copier : copiers_) copier.join();
    copiers_.clear();
    for (auto& batch : state_)  // the handler may still be copying one
        while (batch.load() != 2) std::this_thread::yield();
    Mark done = mark_now();
    copy_s_ = seconds_between(start_time_, done.time);
    (void)!write(stop_[1], "x", 1);
    handler_.join();
    return done;
}

}  // namespace cowsnap::detail
