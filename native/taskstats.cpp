// Exact COW copies from delay accounting (Linux 5.19+, kernel.task_delayacct=1):
// taskstats over generic netlink reports, per thread, how many write-protect
// copies it made (wpcopy_count) and the time they took (wpcopy_delay_total).
#include "internal.h"

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace cowsnap::detail {

namespace {

constexpr std::size_t buffer_bytes = 8192;

struct Request {
    nlmsghdr header;
    genlmsghdr genl;
    char attrs[64];
};

void add_attr(Request& request, unsigned short type, const void* data, std::size_t length) {
    auto* attr = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(&request) + NLMSG_ALIGN(request.header.nlmsg_len));
    attr->nla_type = type;
    attr->nla_len = NLA_HDRLEN + length;
    std::memcpy(reinterpret_cast<char*>(attr) + NLA_HDRLEN, data, length);
    request.header.nlmsg_len = NLMSG_ALIGN(request.header.nlmsg_len) + NLA_ALIGN(attr->nla_len);
}

// Sends one request; returns the reply's length in `reply`, or 0 with the
// reason in `error`.
std::size_t exchange(int fd, Request& request, char* reply, std::string& error) {
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (sendto(fd, &request, request.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
        error = std::string("taskstats send: ") + std::strerror(errno);
        return 0;
    }
    const ssize_t got = recv(fd, reply, buffer_bytes, 0);
    if (got <= 0) {
        error = std::string("taskstats receive: ") + std::strerror(errno);
        return 0;
    }
    const auto* header = reinterpret_cast<const nlmsghdr*>(reply);
    if (!NLMSG_OK(header, std::size_t(got))) {
        error = "taskstats: malformed reply";
        return 0;
    }
    if (header->nlmsg_type == NLMSG_ERROR) {
        // TASKSTATS_CMD_GET needs CAP_NET_ADMIN: EPERM for other users.
        const int code = -reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(header))->error;
        error = std::string("taskstats query refused: ") + std::strerror(code) +
                (code == EPERM ? " (needs CAP_NET_ADMIN)" : "");
        return 0;
    }
    return std::size_t(got);
}

Request new_request(unsigned short family, unsigned char command) {
    Request request{};
    request.header.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
    request.header.nlmsg_type = family;
    request.header.nlmsg_flags = NLM_F_REQUEST;
    request.header.nlmsg_pid = 0;
    request.genl.cmd = command;
    request.genl.version = 1;
    return request;
}

// Calls visit(type, data, length) for each attribute in [begin, begin+length).
template <class Visit>
void each_attr(const char* begin, std::size_t length, Visit visit) {
    for (std::size_t offset = 0; offset + NLA_HDRLEN <= length;) {
        const auto* attr = reinterpret_cast<const nlattr*>(begin + offset);
        if (attr->nla_len < NLA_HDRLEN) break;
        visit(attr->nla_type & NLA_TYPE_MASK, begin + offset + NLA_HDRLEN, attr->nla_len - NLA_HDRLEN);
        offset += NLA_ALIGN(attr->nla_len);
    }
}

const char* payload(const char* reply, std::size_t& length) {
    const auto* header = reinterpret_cast<const nlmsghdr*>(reply);
    length = header->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
    return reply + NLMSG_LENGTH(GENL_HDRLEN);
}

int taskstats_family(int fd, std::string& error) {
    Request request = new_request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY);
    add_attr(request, CTRL_ATTR_FAMILY_NAME, TASKSTATS_GENL_NAME, sizeof TASKSTATS_GENL_NAME);
    char reply[buffer_bytes];
    if (!exchange(fd, request, reply, error)) return -1;
    std::size_t length;
    const char* attrs = payload(reply, length);
    int family = -1;
    each_attr(attrs, length, [&](int type, const char* data, std::size_t) {
        if (type == CTRL_ATTR_FAMILY_ID) family = *reinterpret_cast<const unsigned short*>(data);
    });
    return family;
}

}  // namespace

bool delay_accounting_on() {
    std::ifstream file("/proc/sys/kernel/task_delayacct");
    int on = 0;
    return (file >> on) && on == 1;
}

// One netlink socket per thread, opened at its first query, so that later
// queries (at the snapshot's end, inside a timed span) cost one exchange.
struct Channel {
    int fd = -1, family = -1;
    std::string error;
    Channel() {
        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
        if (fd < 0) error = std::string("netlink socket: ") + std::strerror(errno);
        else family = taskstats_family(fd, error);
        if (fd >= 0 && family < 0 && error.empty()) error = "taskstats: no such generic netlink family";
    }
    ~Channel() {
        if (fd >= 0) close(fd);
    }
};

CopyDelay thread_copy_delay() {
    CopyDelay out;
    thread_local Channel channel;
    const int fd = channel.fd, family = channel.family;
    if (family < 0) {
        out.error = channel.error;
    } else {
        Request request = new_request(family, TASKSTATS_CMD_GET);
        const __u32 tid = __u32(syscall(SYS_gettid));
        add_attr(request, TASKSTATS_CMD_ATTR_PID, &tid, sizeof tid);
        char reply[buffer_bytes];
        out.error = "taskstats: no statistics with wpcopy counts in the reply (kernel before 5.19?)";
        std::string error;
        if (exchange(fd, request, reply, error)) {
            std::size_t length;
            const char* attrs = payload(reply, length);
            each_attr(attrs, length, [&](int type, const char* data, std::size_t size) {
                if (type != TASKSTATS_TYPE_AGGR_PID) return;
                each_attr(data, size, [&](int inner, const char* stats, std::size_t stats_size) {
                    // Older kernels send a shorter struct; wpcopy_* came with version 13.
                    if (inner != TASKSTATS_TYPE_STATS || stats_size < offsetof(taskstats, wpcopy_delay_total) + 8)
                        return;
                    taskstats ts;
                    std::memcpy(&ts, stats, std::min(stats_size, sizeof ts));
                    if (ts.version < 13) return;
                    out.count = double(ts.wpcopy_count);
                    out.delay_s = double(ts.wpcopy_delay_total) / 1e9;
                    out.error.clear();
                });
            });
        } else {
            out.error = error;
        }
    }
    return out;
}

CopyDelay operator-(const CopyDelay& a, const CopyDelay& b) {
    CopyDelay out;
    out.count = a.count - b.count;
    out.delay_s = a.delay_s - b.delay_s;
    out.error = !a.ok() ? a.error : b.error;
    return out;
}

CopyDelay& operator+=(CopyDelay& a, const CopyDelay& b) {
    a.count += b.count;
    a.delay_s += b.delay_s;
    if (a.ok()) a.error = b.error;
    return a;
}

}  // namespace cowsnap::detail
