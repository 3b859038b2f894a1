// cowsnap watch's native side: taskstats of any task, and the final counts
// of tasks as they exit. Nothing here touches the watched program: taskstats
// reads the kernel's accounting of it.
#include "taskstats.h"

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>

namespace cowsnap {

using namespace detail;

namespace {
double monotonic_s() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return double(now.tv_sec) + double(now.tv_nsec) / 1e9;
}
}  // namespace

TaskCounts task_counts(int pid, bool whole_process) { return read_task_counts(pid, whole_process); }

ExitListener::ExitListener() {
    std::ifstream online("/sys/devices/system/cpu/online");
    if (!std::getline(online, cpus_) || cpus_.empty()) {
        error_ = "cannot read /sys/devices/system/cpu/online";
        return;
    }
    fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
    if (fd_ < 0) {
        error_ = std::string("netlink socket: ") + std::strerror(errno);
        return;
    }
    // Room for a burst of exits between two receive() calls.
    const int bytes = 8 << 20;
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0)
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
    family_ = taskstats_family_id(fd_, error_);
    if (family_ < 0) return;
    if (!send_register(fd_, family_, cpus_, error_)) {
        error_ = "exit notifications: " + error_;
        family_ = -1;
    }
}

// Closing the socket deregisters: the kernel drops a listener it can no
// longer send to.
ExitListener::~ExitListener() {
    if (fd_ >= 0) close(fd_);
}

std::vector<TaskCounts> ExitListener::receive(double timeout_s) {
    std::vector<TaskCounts> out;
    if (family_ < 0) return out;
    pollfd waiting{fd_, POLLIN, 0};
    if (poll(&waiting, 1, int(timeout_s * 1000)) <= 0) return out;
    std::vector<char> buffer(16384);
    for (;;) {
        const ssize_t got = recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (got < 0) {
            if (errno == ENOBUFS) {  // the kernel dropped notifications
                ++lost_;
                continue;
            }
            break;
        }
        const double now = monotonic_s();
        int left = int(got);
        for (auto* header = reinterpret_cast<const nlmsghdr*>(buffer.data()); NLMSG_OK(header, left);
             header = NLMSG_NEXT(header, left)) {
            TaskCounts counts[2];
            const std::size_t n =
                parse_task_message(reinterpret_cast<const char*>(header), header->nlmsg_len, counts, 2);
            for (std::size_t i = 0; i < n; ++i) {
                counts[i].received_s = now;
                out.push_back(counts[i]);
            }
        }
    }
    return out;
}

}  // namespace cowsnap
