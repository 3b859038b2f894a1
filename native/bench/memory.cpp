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

// The page size the backing asks for, as advice over the region's whole pages.
void advise(Region& region, const std::string& backing) {
    int advice = -1;
    if (backing == "4k") advice = MADV_NOHUGEPAGE;
    if (backing == "thp") advice = MADV_HUGEPAGE;
    // mthp-<N>k: no advice; the size's sysfs knob (set by the caller) decides.
    if (advice >= 0 && madvise(region.aligned_begin(), region.aligned_bytes(), advice) != 0)
        fail("madvise " + backing);
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
    advise(region, backing);
    return region;
}

Region new_region(const std::string& backing, std::size_t bytes, bool zeroed) {
    Region region;
    region.bytes = bytes;
    region.page_bytes = page_bytes_of(backing);
    region.from_new = true;
    // As the seed's `new std::array<...>()`: glibc serves it from its own
    // mmap, 16 bytes past a page boundary; `()` zeroes it (touching it all).
    const std::size_t n = bytes / sizeof(element);
    region.data = zeroed ? new element[n]() : new element[n];
    advise(region, backing);
    return region;
}

void free_region(Region& region) {
    if (region.from_new) delete[] region.data;
    else if (region.map_base) munmap(region.map_base, region.map_bytes);
    region = Region{};
}

std::size_t Region::pages() const {
    const auto first = reinterpret_cast<std::uintptr_t>(data) / page_bytes;
    const auto last = (reinterpret_cast<std::uintptr_t>(data) + bytes + page_bytes - 1) / page_bytes;
    return last - first;
}

char* Region::aligned_begin() const {
    const auto address = reinterpret_cast<std::uintptr_t>(data);
    return reinterpret_cast<char*>((address + page_bytes - 1) / page_bytes * page_bytes);
}

std::size_t Region::aligned_bytes() const {
    const auto end = (reinterpret_cast<std::uintptr_t>(data) + bytes) / page_bytes * page_bytes;
    const auto begin = reinterpret_cast<std::uintptr_t>(aligned_begin());
    return end > begin ? end - begin : 0;
}

Region allocate_destination(const Params& params, const Region& array, bool zeroed) {
    if (params.alloc == "new") return new_region(params.backing, array.bytes, zeroed);
    Region dest = map_region(params.backing, array.bytes, false, nullptr);
    if (zeroed) std::memset(dest.data, 0, dest.bytes);
    return dest;
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

bool copy_is_consistent(const element* copy, std::size_t n, int threads) {
    std::atomic<bool> ok{true};
    std::vector<std::thread> pool;
    for (int tid = 0; tid < threads; ++tid)
        pool.emplace_back([&, tid] {
            const std::size_t first = n * tid / threads, last = n * (tid + 1) / threads;
            if (!holds_fork_time_values(copy, first, last - first)) ok = false;
        });
    for (auto& thread : pool) thread.join();
    return ok;
}

void check_copy_in_parent(const SnapshotContext& context, Result& result, const std::string& differs) {
    if (!context.params.check_copy) {
        result.effective["snapshot_check"] = NOT_CHECKED;
        return;
    }
    const bool ok = copy_is_consistent(context.dest.data, context.array.elements(), context.params.copiers);
    result.values["snapshot_ok"] = ok;
    if (!ok) fail(result, differs);
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
