// cowsnap: what a fork()-based memory snapshot costs the process that keeps
// writing. This header is the whole interface seen from Python (through a
// cppyy reflection dictionary): fill a Params, call run(), read the Result.
//
// run() measures nothing itself: it starts the benchmark executable built
// from the same sources, so the timed work runs in a process whose address
// space holds only the benchmark (no Python, no Cling), as a plain C program
// doing the same work would.
//
// Field names are the config keys and the record keys; their allowed values
// and defaults live in the config schema, which Python validates before any
// field is set, so nothing here has a default of its own.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace cowsnap {

struct Params {
    // sizes and threads
    long size_mib;    // the array the writers write and the snapshot copies
    int writers;      // parent threads writing the array
    int copiers;      // threads copying the snapshot
    long batch_kib;   // unit the copiers copy and release
    // the snapshot
    std::string method;   // none | fork | uffd | stop
    std::string alloc;    // mmap | new (the seed's: 16 bytes into a page)
    std::string release;  // munmap | dontneed | none: what the child does with a copied batch
    std::string exit;     // early (_exit after the copy) | normal (teardown, then exit)
    std::string hold;     // copy (exit once copied) | writers (keep mappings until writers end)
    std::string start;    // with_child | after_child: when the writers start
    std::string pattern;  // interleaved (element by element across threads) | blocked
    // memory
    std::string backing;   // 4k | thp | hugetlb-2m | hugetlb-1g | mthp-<N>k
    std::string populate;  // none | map | write-after-exit | write-after-release
    std::string dest;      // zeroed (allocated and zeroed before the snapshot) | fresh
    bool dontfork;         // MADV_DONTFORK on a zeroed destination
    std::string inject;    // none | wipe-on-fork: make the snapshot wrong on purpose
    // NUMA
    std::string numa_mem;      // default | local | bind:<nodes> | interleave:<nodes|all> | preferred:<node>
    std::string numa_writers;  // any | node:<n>: CPUs of the parent's writers
    std::string numa_copiers;  // any | node:<n>: CPUs of the copier threads
    // instruments
    long sharing_interval_ms;  // pagemap sampling period while writers run (0: off)
    long memcpy_mib;           // buffer for the machine's own memcpy bandwidth (0: off)
    double timeout_s;          // a child still running after this is killed
};

struct Result {
    std::string status;  // ok | skipped (a setting did not take effect) | failed
    std::string reason;  // why, when not ok
    // Every number the run measured, by record key (seconds end in _s). A
    // counter that could not be read is absent, never 0.
    std::map<std::string, double> values;
    // Settings as read back from the kernel, and where counters came from
    // (or why they could not be read).
    std::map<std::string, std::string> effective;
    // Pages of the array still shared with the child while the writers run:
    // seconds since the writers' start mark, and the shared page count then.
    std::vector<double> sharing_s;
    std::vector<double> sharing_pages;
};

// Runs one point in a fresh benchmark process (`executable`, the
// cowsnap-bench of the same build) and returns what it measured.
Result run(const Params& params, const std::string& executable);

}  // namespace cowsnap
