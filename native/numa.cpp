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

}  // namespace

void apply_memory_policy(void* data, std::size_t bytes, const std::string& numa_mem) {
    if (numa_mem == "default") return;
    const auto colon = numa_mem.find(':');
    const std::string kind = numa_mem.substr(0, colon);
    std::string nodes = colon == std::string::npos ? "" : numa_mem.substr(colon + 1);
    if (nodes == "all") nodes = read_line("/sys/devices/system/node/online");
    unsigned long mask[mask_words] = {};
    for (int node : parse_list(nodes)) mask[node / 64] |= 1ul << (node % 64);
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

std::string nodes_of(const void* data, std::size_t bytes) {
    const long page = sysconf(_SC_PAGESIZE);
    const std::size_t pages = bytes / page, samples = std::min<std::size_t>(pages, 4096);
    std::vector<void*> addresses(samples);
    std::vector<int> status(samples, -1);
    for (std::size_t i = 0; i < samples; ++i)
        addresses[i] = const_cast<char*>(static_cast<const char*>(data)) + (i * pages / samples) * page;
    if (syscall(SYS_move_pages, 0, samples, addresses.data(), nullptr, status.data(), 0) != 0) return "unknown";
    std::map<int, std::size_t> count;
    for (int node : status)
        if (node >= 0) ++count[node];
    std::string out;
    for (const auto& [node, n] : count)
        out += (out.empty() ? "" : ",") + std::to_string(node) + ":" + std::to_string(100 * n / samples) + "%";
    return out.empty() ? "none" : out;
}

void place_thread(const std::string& placement) {
    if (placement == "any") return;
    const std::string node = placement.substr(placement.find(':') + 1);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu : parse_list(read_line("/sys/devices/system/node/node" + node + "/cpulist"))) CPU_SET(cpu, &set);
    // A node without CPUs leaves the set empty: sched_setaffinity refuses it
    // and the thread stays unplaced; the caller checked the node first.
    sched_setaffinity(0, sizeof set, &set);
}

}  // namespace cowsnap::detail
