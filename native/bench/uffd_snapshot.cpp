// A fork-free snapshot: userfaultfd write-protect. The array is protected
// in place; copier threads copy batches and unprotect them; a writer that
// hits a protected page waits while the fault handler copies that page's
// batch first.
//
// Expected cost: registering and write-protecting the array (a page-table
// walk, no copy of the tables); then one fault per protected page a writer
// reaches before the copiers do, each waiting for one batch's memcpy. No
// page is copied by the kernel, and no protection is left once done.
#include "internal.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

enum BatchState { pending, copying, copied };

class UffdSnapshot : public Snapshot {
public:
    explicit UffdSnapshot(SnapshotContext context)
        : c_(context), batch_(std::size_t(context.params.batch_kib) * 1024),
          state_((context.array.bytes + batch_ - 1) / batch_) {}

    ~UffdSnapshot() override {
        if (handler_.joinable()) {
            (void)!write(stop_[1], "x", 1);
            handler_.join();
        }
        copiers_.reset();
        if (fd_ >= 0) {
            uffdio_range range{reinterpret_cast<__u64>(c_.array.data), c_.array.bytes};
            ioctl(fd_, UFFDIO_UNREGISTER, &range);
            close(fd_);
        }
        for (int fd : stop_)
            if (fd >= 0) close(fd);
    }

    void prepare() override {
        fd_ = open_userfaultfd();
        if (fd_ < 0) not_available("userfaultfd");
        uffdio_api api{};
        api.api = UFFD_API;
        api.features = UFFD_FEATURE_PAGEFAULT_FLAG_WP;
        if (c_.backing.kind == Backing::hugetlb) api.features |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
        if (ioctl(fd_, UFFDIO_API, &api) != 0) not_available("UFFDIO_API with write-protect");
        if (pipe2(stop_, O_CLOEXEC) != 0) not_available("pipe");
        handler_ = std::thread([this] { handle_faults(); });  // polls; no fault comes before begin()
        // Copiers and the fault handler race for each batch (take_batch).
        copiers_ = std::make_unique<Copiers>(
            c_.params, state_.size(), [this](std::size_t b) { take_batch(b); }, c_.query_copies);
        if (std::string error = copiers_->placement_error(); !error.empty()) throw NotApplied(error);
    }

    // Register and protect the whole array: what holds the writers up.
    void begin() override {
        const auto t0 = clock::now();
        if (c_.params.dest == "fresh") c_.dest = allocate_destination(c_.params, c_.array, false);
        uffdio_register reg{};
        reg.range = {reinterpret_cast<__u64>(c_.array.data), c_.array.bytes};
        reg.mode = UFFDIO_REGISTER_MODE_WP;
        if (ioctl(fd_, UFFDIO_REGISTER, &reg) != 0) not_available("UFFDIO_REGISTER");
        protect(0, c_.array.bytes, true);
        protect_s_ = seconds_between(t0, clock::now());
        began_ = true;
        start_time_ = clock::now();
        copiers_->start();
    }

    Mark end() override {
        copiers_->join();
        for (auto& batch : state_)  // the handler may still be copying one
            while (batch.load() != copied) std::this_thread::yield();
        const Mark done = mark_now();
        copy_s_ = seconds_between(start_time_, done.time);
        (void)!write(stop_[1], "x", 1);
        handler_.join();
        return done;
    }

    bool writers_wait() const override { return c_.params.start == "after_child"; }

    void report(Result& result) override {
        auto& v = result.values;
        v["uffd_protect_s"] = protect_s_;
        v["uffd_copy_s"] = copy_s_;
        v["uffd_faults"] = double(faults_);
        check_copy_in_parent(c_, result, "snapshot inconsistent: the copy differs from the array at its start");
    }

private:
    void protect(std::size_t offset, std::size_t length, bool on) {
        uffdio_writeprotect wp{};
        wp.range = {reinterpret_cast<__u64>(c_.array.data) + offset, length};
        wp.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0;  // unprotecting wakes the waiters
        if (ioctl(fd_, UFFDIO_WRITEPROTECT, &wp) != 0 && on) not_available("UFFDIO_WRITEPROTECT");
    }

    // Copies batch b unless someone else has; returns whether this call did.
    bool take_batch(std::size_t b) {
        if (!began_) return false;  // an error path released the copiers early
        int expected = pending;
        if (!state_[b].compare_exchange_strong(expected, copying)) return false;
        copy_batch(c_.array, c_.dest.data, batch_, b);
        const std::size_t offset = b * batch_;
        protect(offset, std::min(batch_, c_.array.bytes - offset), false);
        state_[b] = copied;
        return true;
    }

    void handle_faults() {
        pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
        while (poll(fds, 2, -1) >= 0 || errno == EINTR) {
            if (fds[1].revents) return;
            if (!(fds[0].revents & POLLIN)) continue;
            uffd_msg msg;
            while (read(fd_, &msg, sizeof msg) == sizeof msg) {
                if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
                ++faults_;
                const std::size_t b = (msg.arg.pagefault.address - reinterpret_cast<__u64>(c_.array.data)) / batch_;
                if (take_batch(b)) continue;  // its unprotect woke the writer
                // A copier has the batch: its unprotect wakes the writer. Waking
                // it before then would only make it fault again, so wait for
                // the batch, then wake (harmless if the unprotect already did).
                while (state_[b].load() != copied) std::this_thread::yield();
                uffdio_range page{msg.arg.pagefault.address & ~__u64(c_.array.page_bytes - 1), c_.array.page_bytes};
                ioctl(fd_, UFFDIO_WAKE, &page);
            }
        }
    }

    SnapshotContext c_;
    std::size_t batch_;
    std::vector<std::atomic<int>> state_;
    int fd_ = -1;
    int stop_[2] = {-1, -1};
    std::thread handler_;
    std::unique_ptr<Copiers> copiers_;
    clock::time_point start_time_;
    double protect_s_ = 0, copy_s_ = 0;
    long faults_ = 0;
    std::atomic<bool> began_{false};
};

COWSNAP_METHOD("uffd", UffdSnapshot);

}  // namespace

}  // namespace cowsnap::detail
