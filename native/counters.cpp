// Kernel counters: /proc/vmstat, getrusage, pagemap; and the two reference
// costs a record carries (fork of the bare process, memcpy bandwidth).
#include "internal.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace cowsnap::detail {

namespace {
// The vmstat counters that tell faults, reuses and huge-page events apart.
const char* const vmstat_keys[] = {
    "pgfault", "pgreuse", "thp_fault_alloc", "thp_fault_fallback", "thp_split_pmd",
    "thp_split_page", "thp_collapse_alloc",
};

double seconds_of(const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; }
}  // namespace

Vmstat read_vmstat() {
    Vmstat out;
    for (const char* key : vmstat_keys) out[key] = 0;
    std::ifstream file("/proc/vmstat");
    std::string key;
    long value;
    while (file >> key >> value)
        if (out.count(key)) out[key] = value;
    return out;
}

Usage usage_from(const void* raw) {
    const auto& ru = *static_cast<const rusage*>(raw);
    return Usage{double(ru.ru_minflt), seconds_of(ru.ru_utime), seconds_of(ru.ru_stime)};
}

Usage usage_of(int who) {
    rusage ru{};
    getrusage(who, &ru);
    return usage_from(&ru);
}

Usage operator-(const Usage& a, const Usage& b) {
    return Usage{a.minflt - b.minflt, a.utime_s - b.utime_s, a.stime_s - b.stime_s};
}

Usage& operator+=(Usage& a, const Usage& b) {
    a.minflt += b.minflt;
    a.utime_s += b.utime_s;
    a.stime_s += b.stime_s;
    return a;
}

Mark mark_now() { return Mark{clock::now(), read_vmstat(), usage_of(RUSAGE_SELF)}; }

void put_usage(std::map<std::string, double>& values, const std::string& prefix,
               const Usage& usage, const std::string& suffix) {
    values[prefix + "_minflt" + suffix] = usage.minflt;
    values[prefix + "_utime_s" + suffix] = usage.utime_s;
    values[prefix + "_stime_s" + suffix] = usage.stime_s;
}

void put_vmstat_delta(std::map<std::string, double>& values, const Vmstat& a, const Vmstat& b,
                      const std::string& suffix) {
    for (const auto& [key, before] : a) values[key + suffix] = double(b.at(key) - before);
}

long shared_pages(const void* data, std::size_t bytes) {
    constexpr std::uint64_t present = 1ull << 63, exclusive = 1ull << 56;
    const long page = sysconf(_SC_PAGESIZE);
    const int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0) return -1;
    const std::size_t first = reinterpret_cast<std::uintptr_t>(data) / page;
    const std::size_t pages = bytes / page;
    std::vector<std::uint64_t> entries(std::min<std::size_t>(pages, 1 << 16));
    long shared = 0;
    for (std::size_t done = 0; done < pages;) {
        const std::size_t n = std::min(entries.size(), pages - done);
        const ssize_t got = pread(fd, entries.data(), n * 8, (first + done) * 8);
        if (got <= 0) break;
        for (std::size_t i = 0; i < std::size_t(got) / 8; ++i)
            if ((entries[i] & present) && !(entries[i] & exclusive)) ++shared;
        done += std::size_t(got) / 8;
    }
    close(fd);
    return shared;
}

double fork_empty_seconds() {
    double best = 1e9;
    for (int i = 0; i < 3; ++i) {
        const auto t0 = clock::now();
        const pid_t pid = ::fork();
        if (pid == 0) _exit(0);
        const double s = seconds_between(t0, clock::now());
        if (pid < 0) return -1;
        waitpid(pid, nullptr, 0);
        best = std::min(best, s);
    }
    return best;
}

double memcpy_gbps(std::size_t buffer_bytes) {
    Region src = map_region("4k", buffer_bytes, true, nullptr),
           dst = map_region("4k", buffer_bytes, true, nullptr);
    std::memset(src.data, 1, buffer_bytes);
    std::memset(dst.data, 0, buffer_bytes);
    double best = 1e9;
    for (int i = 0; i < 3; ++i) {
        const auto t0 = clock::now();
        std::memcpy(dst.data, src.data, buffer_bytes);
        best = std::min(best, seconds_between(t0, clock::now()));
    }
    unmap_region(src);
    unmap_region(dst);
    return buffer_bytes / best / 1e9;
}

}  // namespace cowsnap::detail
