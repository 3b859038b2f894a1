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

// One field per line of params.def, in its order.
struct Params {
#define COWSNAP_PARAM(type, name) type name;
#include "params.def"
#undef COWSNAP_PARAM
};

// The kinds of a Result's fields (result.def).
namespace result_kind {
using text = std::string;
using numbers = std::map<std::string, double>;
using texts = std::map<std::string, std::string>;
using series = std::vector<double>;
using labels = std::vector<std::string>;
}  // namespace result_kind

// One field per line of result.def, in its order.
struct Result {
#define COWSNAP_RESULT(kind, name) result_kind::kind name;
#include "result.def"
#undef COWSNAP_RESULT
};

// Runs one point in a fresh benchmark process (`executable`, the
// cowsnap-bench of the same build) and returns what it measured.
Result run(const Params& params, const std::string& executable);

// The Params as the text run() sends the benchmark executable, and the
// executable's output read back as a Result ("failed" when cut short): for
// a caller that runs the executable elsewhere (a VM boot).
std::string params_text(const Params& params);
Result result_from_output(const std::string& output);

// ---- Watching another process (cowsnap watch): taskstats of any task.

// One task's counts from taskstats (delay accounting; copies need
// kernel.task_delayacct=1, every query needs CAP_NET_ADMIN).
struct TaskCounts {
    int pid = 0;                // the thread, or the thread group when whole_process
    int tgid = 0, ppid = 0;     // its process and that process's parent (0: not told)
    bool whole_process = false;  // a thread group's totals: delay accounting only
    std::string comm;
    double copies = 0;        // write-protect faults that copied a page (wpcopy_count)
    double copy_delay_s = 0;  // time in those faults (wpcopy_delay_total)
    double cpu_delay_s = 0;   // time runnable, waiting for a CPU (cpu_delay_total)
    // Events only a task with a delay-accounting record counts (block I/O,
    // swap-in, reclaim, thrashing, compaction and copy waits). The kernel
    // gives a task that record only if it was created while
    // kernel.task_delayacct was 1; above 0 proves the task has one. The CPU
    // counts (cpu_count, cpu_delay_total) come from the scheduler for every
    // task and prove nothing.
    double accounted_events = 0;
    bool has_usage = false;   // the next fields hold values (a single task's counts)
    double minflt = 0, majflt = 0, utime_s = 0, stime_s = 0;
    double elapsed_s = 0;     // since the task started
    int exit_code = 0;        // exit notifications: the wait status
    double received_s = 0;    // exit notifications: CLOCK_MONOTONIC when received
    std::string error;        // empty when read; else why not
};

// A thread's counts, or (whole_process) its thread group's delay totals.
TaskCounts task_counts(int pid, bool whole_process);

// Receives the final counts of every task that exits on this machine's CPUs
// (taskstats exit notifications), so a task that lives less than one
// sampling interval is still counted whole.
class ExitListener {
public:
    ExitListener();   // registers all online CPUs; error() says why not
    ~ExitListener();  // deregisters
    ExitListener(const ExitListener&) = delete;
    ExitListener& operator=(const ExitListener&) = delete;
    const std::string& error() const { return error_; }
    // Waits up to timeout_s for the first exit, then takes every exit
    // already queued. Tasks whose notification was lost (a full socket
    // buffer) are counted in lost().
    std::vector<TaskCounts> receive(double timeout_s);
    long lost() const { return lost_; }

private:
    int fd_ = -1, family_ = -1;
    long lost_ = 0;
    std::string cpus_, error_;
};

}  // namespace cowsnap
