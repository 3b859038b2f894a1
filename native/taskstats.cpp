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

// Sends one request; returns the reply's length in `reply` (0 on error).
std::size_t exchange(int fd, Request& request, char* reply) {
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (sendto(fd, &request, request.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
        return 0;
    const ssize_t got = recv(fd, reply, buffer_bytes, 0);
    if (got <= 0) return 0;
    const auto* header = reinterpret_cast<const nlmsghdr*>(reply);
    if (!NLMSG_OK(header, std::size_t(got)) || header->nlmsg_type == NLMSG_ERROR) return 0;
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

int taskstats_family(int fd) {
    Request request = new_request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY);
    add_attr(request, CTRL_ATTR_FAMILY_NAME, TASKSTATS_GENL_NAME, sizeof TASKSTATS_GENL_NAME);
    char reply[buffer_bytes];
    if (!exchange(fd, request, reply)) return -1;
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

CopyDelay thread_copy_delay() {
    CopyDelay out;
    const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
    if (fd < 0) return out;
    const int family = taskstats_family(fd);
    if (family >= 0) {
        Request request = new_request(family, TASKSTATS_CMD_GET);
        const __u32 tid = __u32(syscall(SYS_gettid));
        add_attr(request, TASKSTATS_CMD_ATTR_PID, &tid, sizeof tid);
        char reply[buffer_bytes];
        if (exchange(fd, request, reply)) {
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
                    out.ok = true;
                });
            });
        }
    }
    close(fd);
    return out;
}

CopyDelay& CopyDelay::operator+=(const CopyDelay& other) {
    count += other.count;
    delay_s += other.delay_s;
    ok = ok && other.ok;
    return *this;
}

}  // namespace cowsnap::detail
