// Kernel counters: /proc/vmstat, getrusage, schedstat, pagemap, the run's
// memory cgroup; and the two reference costs a record carries (fork of the
// bare process, memcpy bandwidth).
#include "internal.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace cowsnap::detail {

namespace {
// The vmstat counters that tell faults, reuses and huge-page events apart.
const char* const vmstat_keys[] = {
    "pgfault", "pgmajfault", "pgreuse", "thp_fault_alloc", "thp_fault_fallback", "thp_split_pmd",
    "thp_split_page", "thp_collapse_alloc",
};

double seconds_of(const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; }

// Time this thread spent runnable but waiting for a CPU (the scheduler's
// run_delay, the same number taskstats reports as cpu_delay_total).
double cpu_delay_seconds() {
    std::ifstream file("/proc/thread-self/schedstat");
    double on_cpu_ns = 0, waiting_ns = 0;
    if (!(file >> on_cpu_ns >> waiting_ns)) return -1;
    return waiting_ns / 1e9;
}
}  // namespace

Vmstat read_vmstat() {
    Vmstat out;
    std::ifstream file("/proc/vmstat");
    std::string key;
    long value;
    while (file >> key >> value)
        if (std::find_if(std::begin(vmstat_keys), std::end(vmstat_keys),
                         [&](const char* k) { return key == k; }) != std::end(vmstat_keys))
            out[key] = value;
    return out;
}

Usage usage_from(const void* raw) {
    const auto& ru = *static_cast<const rusage*>(raw);
    return Usage{double(ru.ru_minflt), double(ru.ru_majflt), seconds_of(ru.ru_utime), seconds_of(ru.ru_stime)};
}

Usage usage_of(int who) {
    rusage ru{};
    getrusage(who, &ru);
    return usage_from(&ru);
}

Usage operator-(const Usage& a, const Usage& b) {
    return Usage{a.minflt - b.minflt, a.majflt - b.majflt, a.utime_s - b.utime_s, a.stime_s - b.stime_s};
}

Usage& operator+=(Usage& a, const Usage& b) {
    a.minflt += b.minflt;
    a.majflt += b.majflt;
    a.utime_s += b.utime_s;
    a.stime_s += b.stime_s;
    return a;
}

ThreadCounters thread_counters(bool query_copies) {
    ThreadCounters out;
    out.usage = usage_of(RUSAGE_THREAD);
    out.cpu_delay_s = cpu_delay_seconds();
    out.copies = query_copies ? thread_copy_delay() : CopyDelay{};
    if (!query_copies) out.copies.error = "kernel.task_delayacct is 0 (delay accounting off)";
    return out;
}

ThreadCounters operator-(const ThreadCounters& a, const ThreadCounters& b) {
    ThreadCounters out;
    out.usage = a.usage - b.usage;
    out.cpu_delay_s = a.cpu_delay_s < 0 || b.cpu_delay_s < 0 ? -1 : a.cpu_delay_s - b.cpu_delay_s;
    out.copies = a.copies - b.copies;
    return out;
}

ThreadCounters& operator+=(ThreadCounters& a, const ThreadCounters& b) {
    a.usage += b.usage;
    a.cpu_delay_s = a.cpu_delay_s < 0 || b.cpu_delay_s < 0 ? -1 : a.cpu_delay_s + b.cpu_delay_s;
    a.copies += b.copies;
    return a;
}

Mark mark_now() {
    Mark mark;
    mark.time = clock::now();
    mark.vmstat = read_vmstat();
    mark.self = usage_of(RUSAGE_SELF);
    return mark;
}

Mark mark_start() {
    Mark mark;
    mark.vmstat = read_vmstat();
    mark.self = usage_of(RUSAGE_SELF);
    mark.time = clock::now();
    return mark;
}

void put_usage(Result& result, const std::string& prefix, const Usage& usage, const std::string& suffix) {
    result.values[prefix + "_minflt" + suffix] = usage.minflt;
    result.values[prefix + "_majflt" + suffix] = usage.majflt;
    result.values[prefix + "_utime_s" + suffix] = usage.utime_s;
    result.values[prefix + "_stime_s" + suffix] = usage.stime_s;
}

void put_thread_counters(Result& result, const std::string& prefix, const ThreadCounters& counters,
                         const std::string& suffix) {
    put_usage(result, prefix, counters.usage, suffix);
    if (counters.cpu_delay_s >= 0) result.values[prefix + "_cpu_delay_s" + suffix] = counters.cpu_delay_s;
    // Copies not counted are absent, with the reason in _wpcopy_source.
    if (counters.copies.ok()) {
        result.values[prefix + "_wpcopy_count" + suffix] = counters.copies.count;
        result.values[prefix + "_wpcopy_delay_s" + suffix] = counters.copies.delay_s;
    }
    if (suffix.empty())
        result.effective[prefix + "_wpcopy_source"] =
            counters.copies.ok() ? "taskstats" : "not counted: " + counters.copies.error;
}

void put_vmstat_delta(Result& result, const Vmstat& a, const Vmstat& b, const std::string& suffix) {
    for (const auto& [key, before] : a)
        if (b.count(key)) result.values[key + suffix] = double(b.at(key) - before);
}

long shared_pages(const void* data, std::size_t bytes) {
    constexpr std::uint64_t present = 1ull << 63, exclusive = 1ull << 56;
    const long page = sysconf(_SC_PAGESIZE);
    const int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0) return -1;
    const std::size_t first = reinterpret_cast<std::uintptr_t>(data) / page;
    const std::size_t pages = (reinterpret_cast<std::uintptr_t>(data) + bytes + page - 1) / page - first;
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

long mapping_count() {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    long count = 0;
    while (std::getline(maps, line)) ++count;
    return count;
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
    OwnedRegion src, dst;
    src.region = map_region("4k", buffer_bytes, true, nullptr);
    dst.region = map_region("4k", buffer_bytes, true, nullptr);
    std::memset(src.region.data, 1, buffer_bytes);
    std::memset(dst.region.data, 0, buffer_bytes);
    double best = 1e9;
    for (int i = 0; i < 3; ++i) {
        const auto t0 = clock::now();
        std::memcpy(dst.region.data, src.region.data, buffer_bytes);
        best = std::min(best, seconds_between(t0, clock::now()));
    }
    return buffer_bytes / best / 1e9;
}

namespace {
// One write to each 4 KiB page of a region (volatile: the compiler keeps every one).
void write_each_page(const Region& region, char value) {
    char* data = reinterpret_cast<char*>(region.data);
    for (std::size_t at = 0; at < region.bytes; at += 4096) *static_cast<volatile char*>(data + at) = value;
}
}  // namespace

FreshPageCost fresh_page_cost(std::size_t bytes) {
    OwnedRegion probe;
    probe.region = map_region("4k", bytes, false, nullptr);  // 4 KiB pages: one fault each
    const std::size_t pages = bytes / 4096;
    auto touch_all = [&](char value) {
        const auto t0 = clock::now();
        write_each_page(probe.region, value);
        return seconds_between(t0, clock::now()) / double(pages) * 1e6;
    };
    FreshPageCost cost;
    cost.first_touch_us = touch_all(1);
    cost.second_touch_us = touch_all(2);
    return cost;
}

double warm_memory(std::size_t bytes) {
    if (bytes == 0) return 0;
    const auto t0 = clock::now();
    OwnedRegion warm;
    warm.region = map_region("4k", bytes, false, nullptr);
    // One kernel loop where it can (5.14+), a write per page elsewhere.
    if (madvise(warm.region.data, bytes, MADV_POPULATE_WRITE) != 0) write_each_page(warm.region, 1);
    free_region(warm.region);
    return seconds_between(t0, clock::now());
}

namespace {
// The run's memory cgroup as join_memory_cgroup() left it: its folder and
// version, or why this process is in none of its own.
struct MemoryCgroup {
    std::string dir;
    int version = 0;  // 1 or 2
    std::string error = std::string(MEMORY_CGROUP_VARIABLE) + " is not set: no memory cgroup of the run's own";
};

MemoryCgroup& memory_cgroup() {
    static MemoryCgroup cgroup;
    return cgroup;
}

bool file_exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// '' once `text` is written to the file, else why not.
std::string write_file(const std::string& path, const std::string& text) {
    const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return std::strerror(errno);
    const ssize_t wrote = write(fd, text.data(), text.size());
    const int error = wrote < 0 ? errno : EIO;
    close(fd);
    return wrote == ssize_t(text.size()) ? "" : std::strerror(error);
}

// The number in an open cgroup file, read from its start; -1 when unreadable.
double read_number(int fd) {
    char text[64];
    const ssize_t got = fd < 0 ? -1 : pread(fd, text, sizeof text - 1, 0);
    if (got <= 0) return -1;
    text[got] = '\0';
    char* end;
    const double value = std::strtod(text, &end);
    return end == text ? -1 : value;
}

double read_number(const std::string& path) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    const double value = read_number(fd);
    if (fd >= 0) close(fd);
    return value;
}

// Whether the cgroup v2 hierarchy charges hugetlb pages to memory (mounted
// with memory_hugetlb_accounting, Linux 6.6+); cgroup v1 never does.
bool hugetlb_charged(int version) {
    if (version != 2) return false;
    std::ifstream mounts("/proc/self/mountinfo");
    std::string line;
    while (std::getline(mounts, line))
        if (line.find(" - cgroup2 ") != std::string::npos &&
            line.find("memory_hugetlb_accounting") != std::string::npos)
            return true;
    return false;
}

std::string peak_file(int version) { return version == 1 ? "memory.max_usage_in_bytes" : "memory.peak"; }
}  // namespace

void join_memory_cgroup() {
    MemoryCgroup& cgroup = memory_cgroup();
    const char* dir = std::getenv(MEMORY_CGROUP_VARIABLE);
    if (dir == nullptr || *dir == '\0') return;
    const std::string folder(dir);
    cgroup.version = file_exists(folder + "/memory.max_usage_in_bytes") ? 1
                     : file_exists(folder + "/memory.peak")            ? 2
                                                                       : 0;
    if (cgroup.version == 0) {
        cgroup.error = file_exists(folder + "/memory.current")
                           ? folder + " has no memory.peak (cgroup v2 before Linux 5.19)"
                           : folder + " is no memory cgroup (neither memory.peak nor memory.max_usage_in_bytes)";
        return;
    }
    if (std::string error = write_file(folder + "/cgroup.procs", std::to_string(getpid())); !error.empty()) {
        cgroup.error = "cannot join " + folder + " (cgroup.procs): " + error;
        return;
    }
    cgroup.dir = folder;
    cgroup.error.clear();
}

SnapshotMemory::SnapshotMemory(const Backing& backing) : error_(memory_cgroup().error) {
    const MemoryCgroup& cgroup = memory_cgroup();
    if (error_.empty() && backing.kind == Backing::hugetlb && !hugetlb_charged(cgroup.version))
        error_ = cgroup.version == 1 ? "cgroup v1 does not charge hugetlb pages to memory"
                                     : "cgroup v2 charges hugetlb pages to memory only when mounted with "
                                       "memory_hugetlb_accounting (Linux 6.6+), and it is not";
    if (!error_.empty()) return;
    const std::string file = cgroup.version == 1 ? "memory.usage_in_bytes" : "memory.current";
    usage_ = read_number(cgroup.dir + "/" + file);
    if (usage_ < 0) error_ = "cannot read " + cgroup.dir + "/" + file;
}

SnapshotMemory::~SnapshotMemory() {
    if (peak_fd_ >= 0) close(peak_fd_);
}

void SnapshotMemory::reset_peak() {
    if (!error_.empty()) return;
    const MemoryCgroup& cgroup = memory_cgroup();
    const std::string path = cgroup.dir + "/" + peak_file(cgroup.version);
    if (cgroup.version == 1) {
        if (std::string error = write_file(path, "0"); !error.empty())
            error_ = "cannot reset " + path + ": " + error;
        return;
    }
    // cgroup v2: writing memory.peak resets it to the current usage, for
    // reads through this open file only (Linux 6.12+; before, it is read-only).
    peak_fd_ = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (peak_fd_ < 0 || write(peak_fd_, "reset\n", 6) != 6)
        error_ = "cannot reset " + path + " (writable from Linux 6.12): " + std::strerror(errno);
}

void SnapshotMemory::report(Result& result) {
    const MemoryCgroup& cgroup = memory_cgroup();
    const std::string file = peak_file(cgroup.version);
    double peak = -1;
    if (error_.empty()) {
        peak = cgroup.version == 1 ? read_number(cgroup.dir + "/" + file) : read_number(peak_fd_);
        if (peak < 0) error_ = "cannot read " + cgroup.dir + "/" + file;
    }
    // Not counted: absent, never 0, with the reason.
    if (!error_.empty()) {
        result.effective["snapshot_memory_source"] = "not counted: " + error_;
        return;
    }
    result.values["snapshot_memory_mib"] = (peak - usage_) / (1024.0 * 1024.0);
    result.effective["snapshot_memory_source"] = "cgroup v" + std::to_string(cgroup.version) + " " + file;
}

void fail(Result& result, const std::string& reason) {
    if (reason.empty() || result.status == "failed") return;
    result.status = "failed";
    result.reason = reason;
}

}  // namespace cowsnap::detail
