// The array and its page backing; the values that make a snapshot checkable.
#include "internal.h"

#include <linux/mman.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace cowsnap::detail {

namespace {
constexpr std::size_t kib = 1024, mib = 1024 * kib, gib = 1024 * mib;

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
}
}  // namespace

std::size_t page_bytes_of(const std::string& backing) {
    if (backing == "hugetlb-2m") return 2 * mib;
    if (backing == "hugetlb-1g") return gib;
    // THP and mTHP arrays are still mapped with 4 KiB PTEs where the kernel
    // cannot use a larger folio; faults and copies are counted per 4 KiB.
    return 4 * kib;
}

Region map_region(const std::string& backing, std::size_t bytes, bool populate, void* at) {
    Region region;
    region.bytes = bytes;
    region.page_bytes = page_bytes_of(backing);
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0) |
                (at ? MAP_FIXED_NOREPLACE : 0);
    if (starts_with(backing, "hugetlb-"))
        flags |= MAP_HUGETLB | (backing == "hugetlb-1g" ? MAP_HUGE_1GB : MAP_HUGE_2MB);
    // THP needs a 2 MiB aligned range: map one PMD more and trim.
    const std::size_t align = backing == "thp" ? 2 * mib : 0;
    region.map_bytes = bytes + align;
    void* base = mmap(at, region.map_bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (base == MAP_FAILED) fail("mmap of " + std::to_string(bytes) + " bytes (" + backing + ")");
    region.map_base = base;
    auto address = reinterpret_cast<std::uintptr_t>(base);
    if (align) address = (address + align - 1) & ~(align - 1);
    region.data = reinterpret_cast<element*>(address);

    int advice = -1;
    if (backing == "4k") advice = MADV_NOHUGEPAGE;
    if (backing == "thp") advice = MADV_HUGEPAGE;
    // mthp-<N>k: no advice; the size's sysfs knob (set by the caller) decides.
    if (advice >= 0 && madvise(region.data, bytes, advice) != 0) fail("madvise " + backing);
    return region;
}

void unmap_region(Region& region) {
    if (region.map_base) munmap(region.map_base, region.map_bytes);
    region = Region{};
}

void fill_fork_time_values(Region& region) {
    element* data = region.data;
    for (std::size_t i = 0, n = region.elements(); i < n; ++i) data[i] = fork_time_value(i);
}

bool holds_fork_time_values(const element* copy, std::size_t first, std::size_t count) {
    for (std::size_t i = first; i < first + count; ++i)
        if (copy[i] != fork_time_value(i)) return false;
    return true;
}

CopyDelay copy_batches(const Region& src, element* dst, std::size_t batch_bytes, int copiers,
                       const std::function<void(std::size_t)>& after_batch, bool query_delay) {
    const std::size_t batches = (src.bytes + batch_bytes - 1) / batch_bytes;
    std::vector<std::thread> threads;
    std::vector<CopyDelay> copies(copiers);
    for (int tid = 0; tid < copiers; ++tid) {
        threads.emplace_back([&, tid] {
            for (std::size_t b = tid; b < batches; b += copiers) {
                const std::size_t offset = b * batch_bytes;
                const std::size_t length = std::min(batch_bytes, src.bytes - offset);
                std::memcpy(reinterpret_cast<char*>(dst) + offset,
                            reinterpret_cast<const char*>(src.data) + offset, length);
                after_batch(b);
            }
            if (query_delay) copies[tid] = thread_copy_delay();
        });
    }
    CopyDelay total;
    total.ok = query_delay;
    for (int tid = 0; tid < copiers; ++tid) {
        threads[tid].join();
        total += copies[tid];
    }
    return total;
}

long anon_huge_kib(const void* data) {
    const auto address = reinterpret_cast<std::uintptr_t>(data);
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool inside = false;
    while (std::getline(smaps, line)) {
        unsigned long start, end;
        if (std::sscanf(line.c_str(), "%lx-%lx ", &start, &end) == 2) {
            inside = start <= address && address < end;
        } else if (inside && line.rfind("AnonHugePages:", 0) == 0) {
            return std::stol(line.substr(14));
        }
    }
    return 0;
}

long mthp_fault_allocs(long size_kib) {
    std::ifstream file("/sys/kernel/mm/transparent_hugepage/hugepages-" + std::to_string(size_kib) +
                       "kB/stats/anon_fault_alloc");
    long count = -1;
    file >> count;
    return count;
}

}  // namespace cowsnap::detail
