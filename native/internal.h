// Pieces shared by the benchmark's source files; not part of the interface
// Python sees (cowsnap.h is).
#pragma once

#include "cowsnap.h"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace cowsnap::detail {

using element = std::uint64_t;
using clock = std::chrono::steady_clock;

inline double seconds_between(clock::time_point from, clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

// ---- memory.cpp: the array, its backing, and the values that prove a copy
struct Region {
    element* data = nullptr;
    std::size_t bytes = 0;
    std::size_t page_bytes = 4096;  // page size of the backing
    void* map_base = nullptr;       // what to munmap (may start before data)
    std::size_t map_bytes = 0;
    std::size_t elements() const { return bytes / sizeof(element); }
};

std::size_t page_bytes_of(const std::string& backing);
// `at`: map exactly there (MAP_FIXED_NOREPLACE), else anywhere.
Region map_region(const std::string& backing, std::size_t bytes, bool populate, void* at);
void unmap_region(Region& region);

// The array holds fork_time_value(i) when the snapshot is taken; writers
// store written_value(i). A copy is consistent when every element of it
// equals fork_time_value.
inline element fork_time_value(std::size_t i) { return i * 0x9E3779B97F4A7C15ull + 1; }
inline element written_value(std::size_t i) { return ~fork_time_value(i); }
void fill_fork_time_values(Region& region);
bool holds_fork_time_values(const element* copy, std::size_t first, std::size_t count);

// Copies src to dst in batches with `copiers` threads (batch i goes to
// thread i % copiers); after_batch(i) runs once batch i is copied.
// The kiB of the array's mapping backed by PMD-mapped huge pages (smaps).
long anon_huge_kib(const void* data);
// Faults that allocated an mTHP folio of this size so far (sysfs stats), -1 if none.
long mthp_fault_allocs(long size_kib);

// ---- taskstats.cpp: exact COW copies of the calling thread
struct CopyDelay {
    double count = 0, delay_s = 0;
    bool ok = true;  // false once any part could not be read
    CopyDelay& operator+=(const CopyDelay& other);
};
bool delay_accounting_on();
CopyDelay thread_copy_delay();

// Copies src to dst in batches with `copiers` threads (batch i goes to
// thread i % copiers); after_batch(i) runs once batch i is copied. With
// query_delay, each thread's COW copies are summed into the result.
CopyDelay copy_batches(const Region& src, element* dst, std::size_t batch_bytes, int copiers,
                       const std::function<void(std::size_t)>& after_batch, bool query_delay);

// ---- numa.cpp: memory policy and CPU placement, and what took effect
void apply_memory_policy(void* data, std::size_t bytes, const std::string& numa_mem);
std::string memory_policy_of(void* data);
std::string nodes_of(const void* data, std::size_t bytes);  // "0:75%,1:25%" of sampled pages
void place_thread(const std::string& placement);            // any | node:<n>

// Raised when a setting did not take effect: the run is skipped, not measured.
struct NotApplied : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ---- counters.cpp: kernel counters and clocks
using Vmstat = std::map<std::string, long>;
Vmstat read_vmstat();

struct Usage {
    double minflt = 0, utime_s = 0, stime_s = 0;
};
Usage usage_of(int who);  // RUSAGE_SELF, RUSAGE_THREAD
Usage usage_from(const void* rusage);
Usage operator-(const Usage& a, const Usage& b);
Usage& operator+=(Usage& a, const Usage& b);

// One moment of the writers' phase: time, system counters, process usage.
struct Mark {
    clock::time_point time;
    Vmstat vmstat;
    Usage self;
};
Mark mark_now();
// Writes prefix_minflt, prefix_utime_s, prefix_stime_s.
void put_usage(std::map<std::string, double>& values, const std::string& prefix,
               const Usage& usage, const std::string& suffix = "");
// Writes each vmstat key's change from a to b, with suffix appended.
void put_vmstat_delta(std::map<std::string, double>& values, const Vmstat& a, const Vmstat& b,
                      const std::string& suffix = "");

// Counts pages of [data, data+bytes) that are present but no longer mapped
// exclusively by this process (pagemap bit 56 clear): still shared with a child.
long shared_pages(const void* data, std::size_t bytes);

double fork_empty_seconds();                 // fork() of this process, array not yet mapped
double memcpy_gbps(std::size_t buffer_bytes);  // one thread, best of three

// ---- writers.cpp
struct WriterTotals {
    Usage usage;             // summed over threads, RUSAGE_THREAD each
    Usage usage_before_end;  // the part before the snapshot ended
    CopyDelay copies;   // summed over threads (taskstats), when delay accounting is on
};
class Writers {
public:
    Writers(Region& array, const Params& params);
    ~Writers();
    void start();           // releases the threads
    void snapshot_ended();  // from now on, their usage counts as after the snapshot
    WriterTotals finish();  // joins them
private:
    struct Shared;
    Shared* shared_;
};

// ---- fork_snapshot.cpp
// ---- uffd_snapshot.cpp
class UffdSnapshot {
public:
    UffdSnapshot(const Params& params, Region& array, Region& dest);  // NotApplied if unsupported
    ~UffdSnapshot();
    void start();   // protects the array, starts the copiers and the fault handler
    Mark finish();  // waits for every batch; the moment the snapshot ended
    double copy_s() const { return copy_s_; }
    long faults() const { return faults_; }  // write faults the handler saw

private:
    void protect(std::size_t offset, std::size_t length, bool on);
    bool copy_batch(std::size_t b);
    void handle_faults();
    const Params& params_;
    Region& array_;
    Region& dest_;
    std::size_t batch_;
    std::vector<std::atomic<int>> state_;  // per batch: 0 pending, 1 copying, 2 copied
    int fd_ = -1;
    int stop_[2] = {-1, -1};
    std::thread handler_;
    std::vector<std::thread> copiers_;
    clock::time_point start_time_;
    double copy_s_ = 0;
    long faults_ = 0;
};

// ---- fork_snapshot.cpp
struct ChildReport {
    double copy_s = 0;
    double check_s = 0;
    int snapshot_ok = 0;
    CopyDelay copies;
};

struct ChildOutcome {
    bool reaped = false;
    int wait_status = 0;
    bool timed_out = false;
    bool reported = false;
    ChildReport report;
    Usage usage;
    Mark exit_mark;  // when the parent saw the child exit
};
class ForkSnapshot {
public:
    ForkSnapshot(const Params& params, Region& array, Region& dest);
    ~ForkSnapshot();
    double fork();                    // returns the fork() call's seconds
    void release_hold();              // hold=writers: the writers are done
    ChildOutcome wait();              // reaps the child (honours timeout_s)
    int release_fd() const { return release_read_; }  // batch indices, populate=write-after-release
private:
    const Params& params_;
    Region& array_;
    Region& dest_;
    int pid_ = -1;
    clock::time_point fork_time_;
    int report_read_ = -1, hold_write_ = -1, release_read_ = -1;
};

}  // namespace cowsnap::detail
