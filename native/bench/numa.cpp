// NUMA: the array's memory policy (mbind) and the CPU placement of threads,
// through the raw system calls (no libnuma), and what actually took effect.
#include "internal.h"

#include <linux/mempolicy.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace cowsnap::detail {

namespace {

constexpr int mask_words = 16;  // 1024 nodes
constexpr unsigned long max_node = mask_words * 64 + 1;

// "0,2-3" -> {0, 2, 3}
std::vector<int> parse_list(const std::string& text) {
    std::vector<int> out;
    std::stringstream parts(text);
    std::string part;
    while (std::getline(parts, part, ',')) {
        if (part.empty()) continue;
        const auto dash = part.find('-');
        const int first = std::stoi(part.substr(0, dash));
        const int last = dash == std::string::npos ? first : std::stoi(part.substr(dash + 1));
        for (int i = first; i <= last; ++i) out.push_back(i);
    }
    return out;
}

std::string read_line(const std::string& path) {
    std::ifstream file(path);
    std::string line;
    std::getline(file, line);
    return line;
}

std::string list_of(const unsigned long* mask) {
    std::string out;
    for (int node = 0; node < mask_words * 64; ++node)
        if (mask[node / 64] & (1ul << (node % 64))) out += (out.empty() ? "" : ",") + std::to_string(node);
    return out;
}

// "bind:0,2-3" -> ("bind", {0, 2, 3}); "interleave:all" names every online node.
std::pair<std::string, std::vector<int>> policy_and_nodes(const std::string& numa_mem) {
    const auto colon = numa_mem.find(':');
    std::string nodes = colon == std::string::npos ? "" : numa_mem.substr(colon + 1);
    if (nodes == "all") nodes = read_line("/sys/devices/system/node/online");
    return {numa_mem.substr(0, colon), parse_list(nodes)};
}

}  // namespace

void apply_memory_policy(void* data, std::size_t bytes, const std::string& numa_mem) {
    if (numa_mem == "default") return;
    const auto [kind, nodes] = policy_and_nodes(numa_mem);
    unsigned long mask[mask_words] = {};
    for (int node : nodes) mask[node / 64] |= 1ul << (node % 64);
    const int mode = kind == "local"        ? MPOL_LOCAL
                     : kind == "bind"       ? MPOL_BIND
                     : kind == "interleave" ? MPOL_INTERLEAVE
                                            : MPOL_PREFERRED;
    if (syscall(SYS_mbind, data, bytes, mode, kind == "local" ? nullptr : mask, max_node, 0) != 0)
        throw NotApplied("numa_mem=" + numa_mem + ": mbind: " + std::strerror(errno));
}

std::string memory_policy_of(void* data) {
    int mode = -1;
    unsigned long mask[mask_words] = {};
    if (syscall(SYS_get_mempolicy, &mode, mask, max_node, data, MPOL_F_ADDR) != 0) return "unknown";
    switch (mode) {
        case MPOL_DEFAULT: return "default";
        case MPOL_LOCAL: return "local";
        case MPOL_BIND: return "bind:" + list_of(mask);
        case MPOL_INTERLEAVE: return "interleave:" + list_of(mask);
        case MPOL_PREFERRED: return "preferred:" + list_of(mask);
        default: return "mode-" + std::to_string(mode);
    }
}

std::map<int, double> node_shares(const void* data, std::size_t bytes) {
    const long page = sysconf(_SC_PAGESIZE);
    const std::size_t pages = bytes / page, samples = std::min<std::size_t>(pages, 4096);
    std::vector<void*> addresses(samples);
    std::vector<int> status(samples, -1);
    for (std::size_t i = 0; i < samples; ++i)
        addresses[i] = const_cast<char*>(static_cast<const char*>(data)) + (i * pages / samples) * page;
    std::map<int, double> shares;
    if (syscall(SYS_move_pages, 0, samples, addresses.data(), nullptr, status.data(), 0) != 0) return shares;
    for (int node : status)
        if (node >= 0) shares[node] += 1.0 / samples;
    return shares;
}

std::string describe_shares(const std::map<int, double>& shares) {
    std::string out;
    for (const auto& [node, share] : shares)
        out += (out.empty() ? "" : ",") + std::to_string(node) + ":" + std::to_string(int(100 * share + 0.5)) + "%";
    return out.empty() ? "unknown" : out;
}

int current_node() {
    unsigned cpu = 0, node = 0;
    return syscall(SYS_getcpu, &cpu, &node, nullptr) == 0 ? int(node) : -1;
}

std::string placement_mismatch(const std::string& numa_mem, const std::map<int, double>& shares, int fill_node) {
    if (numa_mem == "default") return "";
    const std::string where = "numa_mem=" + numa_mem + ": pages landed on " + describe_shares(shares);
    if (shares.empty()) return where + " (move_pages could not tell)";
    const auto [kind, listed] = policy_and_nodes(numa_mem);
    const std::vector<int> named = kind == "local" ? std::vector<int>{fill_node} : listed;
    auto share_on = [&](int node) { return shares.count(node) ? shares.at(node) : 0.0; };
    double inside = 0;
    for (int node : named) inside += share_on(node);
    // bind never places a page elsewhere; preferred and local may when a node
    // runs short, so 90% is asked of them.
    if (kind == "bind" && inside < 0.999) return where;
    if ((kind == "preferred" || kind == "local") && inside < 0.9) return where;
    if (kind == "interleave") {
        if (inside < 0.999) return where;
        for (int node : named)
            if (share_on(node) < 0.5 / named.size()) return where + " (not interleaved)";
    }
    return "";
}

std::string place_thread(const std::string& placement) {
    if (placement == "any") return "";
    const std::string node = placement.substr(placement.find(':') + 1);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu : parse_list(read_line("/sys/devices/system/node/node" + node + "/cpulist"))) CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        return placement + ": sched_setaffinity: " + std::strerror(errno);
    // Read back: the thread now runs only on that node's CPUs.
    cpu_set_t got;
    if (sched_getaffinity(0, sizeof got, &got) != 0 || !CPU_EQUAL(&got, &set))
        return placement + ": the thread's CPUs read back differently";
    const int cpu = sched_getcpu();
    if (cpu < 0 || !CPU_ISSET(cpu, &set)) return placement + ": the thread runs on CPU " + std::to_string(cpu);
    return "";
}

}  // namespace cowsnap::detail
