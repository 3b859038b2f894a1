// Exact COW copies from delay accounting (Linux 5.19+, kernel.task_delayacct=1):
// taskstats over generic netlink reports, per thread or thread group, how many
// write-protect copies it made (wpcopy_count), the time they took
// (wpcopy_delay_total) and its time waiting for a CPU (cpu_delay_total).
// The same messages carry the final counts of tasks that exit (see watch.cpp).
#include "taskstats.h"

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
        if (code == 0) return std::size_t(got);  // an ack
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

int taskstats_family_id(int fd, std::string& error) {
    const int family = taskstats_family(fd, error);
    if (family < 0 && error.empty()) error = "taskstats: no such generic netlink family";
    return family;
}

// One netlink socket per thread, opened at its first query, so that later
// queries (at the snapshot's end, inside a timed span) cost one exchange.
struct Channel {
    int fd = -1, family = -1;
    std::string error;
    Channel() {
        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
        if (fd < 0) error = std::string("netlink socket: ") + std::strerror(errno);
        else family = taskstats_family_id(fd, error);
    }
    ~Channel() {
        if (fd >= 0) close(fd);
    }
};

bool send_register(int fd, int family, const std::string& cpus, std::string& error) {
    Request request = new_request(family, TASKSTATS_CMD_GET);
    request.header.nlmsg_flags |= NLM_F_ACK;  // the kernel answers a registration with an ack only
    add_attr(request, TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, cpus.c_str(), cpus.size() + 1);
    char reply[buffer_bytes];
    return exchange(fd, request, reply, error) != 0;
}

std::size_t parse_task_message(const char* message, std::size_t length, TaskCounts* out, std::size_t room) {
    const auto* header = reinterpret_cast<const nlmsghdr*>(message);
    if (length < NLMSG_LENGTH(GENL_HDRLEN) || header->nlmsg_type == NLMSG_ERROR) return 0;
    std::size_t attrs_length;
    const char* attrs = payload(message, attrs_length);
    std::size_t found = 0;
    each_attr(attrs, attrs_length, [&](int type, const char* data, std::size_t size) {
        if ((type != TASKSTATS_TYPE_AGGR_PID && type != TASKSTATS_TYPE_AGGR_TGID) || found == room) return;
        TaskCounts counts;
        counts.whole_process = type == TASKSTATS_TYPE_AGGR_TGID;
        counts.error = "taskstats: no statistics with wpcopy counts in the reply (kernel before 5.19?)";
        each_attr(data, size, [&](int inner, const char* value, std::size_t value_size) {
            if (inner == TASKSTATS_TYPE_PID || inner == TASKSTATS_TYPE_TGID) {
                counts.pid = int(*reinterpret_cast<const __u32*>(value));
                return;
            }
            // Older kernels send a shorter struct; wpcopy_* came with version 13.
            if (inner != TASKSTATS_TYPE_STATS || value_size < offsetof(taskstats, wpcopy_delay_total) + 8) return;
            taskstats ts{};
            std::memcpy(&ts, value, std::min(value_size, sizeof ts));
            if (ts.version < 13) return;
            counts.copies = double(ts.wpcopy_count);
            counts.copy_delay_s = double(ts.wpcopy_delay_total) / 1e9;
            counts.cpu_delay_s = double(ts.cpu_delay_total) / 1e9;
            counts.accounted_events = double(ts.blkio_count + ts.swapin_count + ts.freepages_count +
                                             ts.thrashing_count + ts.compact_count + ts.wpcopy_count);
            // A thread group's totals carry delay accounting only; a task's
            // also carry its basic accounting (faults, CPU time, lifetime).
            if (!counts.whole_process) {
                counts.has_usage = true;
                counts.tgid = int(ts.ac_tgid);
                counts.ppid = int(ts.ac_ppid);
                counts.minflt = double(ts.ac_minflt);
                counts.majflt = double(ts.ac_majflt);
                counts.utime_s = double(ts.ac_utime) / 1e6;
                counts.stime_s = double(ts.ac_stime) / 1e6;
                counts.elapsed_s = double(ts.ac_etime) / 1e6;
                counts.exit_code = int(ts.ac_exitcode);
                counts.comm.assign(ts.ac_comm, strnlen(ts.ac_comm, sizeof ts.ac_comm));
            }
            counts.error.clear();
        });
        if (counts.whole_process) counts.tgid = counts.pid;
        out[found++] = counts;
    });
    return found;
}

TaskCounts read_task_counts(int id, bool whole_process) {
    TaskCounts out;
    out.pid = id;
    out.whole_process = whole_process;
    thread_local Channel channel;
    if (channel.family < 0) {
        out.error = channel.error;
        return out;
    }
    Request request = new_request(channel.family, TASKSTATS_CMD_GET);
    const __u32 id32 = __u32(id);
    add_attr(request, whole_process ? TASKSTATS_CMD_ATTR_TGID : TASKSTATS_CMD_ATTR_PID, &id32, sizeof id32);
    char reply[buffer_bytes];
    std::string error;
    const std::size_t got = exchange(channel.fd, request, reply, error);
    if (!got) {
        out.error = error;
        return out;
    }
    TaskCounts parsed[2];
    const std::size_t n = parse_task_message(reply, got, parsed, 2);
    out.error = "taskstats: no statistics in the reply";
    for (std::size_t i = 0; i < n; ++i)
        if (parsed[i].whole_process == whole_process) out = parsed[i];
    if (out.pid == 0) out.pid = id;
    return out;
}

CopyDelay task_copy_delay(pid_t tid) {
    const TaskCounts counts = read_task_counts(int(tid), false);
    CopyDelay out;
    out.error = counts.error;
    if (counts.error.empty()) {
        out.count = counts.copies;
        out.delay_s = counts.copy_delay_s;
        out.cpu_delay_s = counts.cpu_delay_s;
    }
    return out;
}

CopyDelay thread_copy_delay() { return task_copy_delay(pid_t(syscall(SYS_gettid))); }

CopyDelay operator-(const CopyDelay& a, const CopyDelay& b) {
    CopyDelay out;
    out.count = a.count - b.count;
    out.delay_s = a.delay_s - b.delay_s;
    out.cpu_delay_s = a.cpu_delay_s - b.cpu_delay_s;
    out.error = !a.ok() ? a.error : b.error;
    return out;
}

CopyDelay& operator+=(CopyDelay& a, const CopyDelay& b) {
    a.count += b.count;
    a.delay_s += b.delay_s;
    a.cpu_delay_s += b.cpu_delay_s;
    if (a.ok()) a.error = b.error;
    return a;
}

}  // namespace cowsnap::detail
