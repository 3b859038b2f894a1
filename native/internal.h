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
#include <string>
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
void copy_batches(const Region& src, element* dst, std::size_t batch_bytes, int copiers,
                  const std::function<void(std::size_t)>& after_batch);

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
class Writers {
public:
    Writers(Region& array, int writers, const std::string& pattern);
    ~Writers();
    void start();    // releases the threads
    Usage finish();  // joins them; their usage summed (RUSAGE_THREAD each)
private:
    struct Shared;
    Shared* shared_;
};

// ---- fork_snapshot.cpp
struct ChildReport {
    double copy_s = 0;
    double check_s = 0;
    int snapshot_ok = 0;
    long batches = 0;
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
