// Taskstats over netlink (taskstats.cpp): a thread's exact COW copies for
// the benchmark, and task counts and exit notifications for the watch.
#pragma once

#include "cowsnap.h"

#include <cstddef>
#include <string>

#include <sys/types.h>

namespace cowsnap::detail {

// Exact COW copies of a thread (delay accounting, taskstats): how many
// write-protect faults copied a page, and the time spent in them.
struct CopyDelay {
    double count = 0, delay_s = 0, cpu_delay_s = 0;
    std::string error = "not read";  // empty once read; else why not
    bool ok() const { return error.empty(); }
};
CopyDelay operator-(const CopyDelay& a, const CopyDelay& b);
CopyDelay& operator+=(CopyDelay& a, const CopyDelay& b);
bool delay_accounting_on();
// The calling thread's counts; `error` says why not when they cannot be read.
CopyDelay thread_copy_delay();
// The same for any thread of the machine.
CopyDelay task_copy_delay(pid_t tid);
// A thread's taskstats (whole_process: its thread group's delay totals).
TaskCounts read_task_counts(int id, bool whole_process);
// Taskstats over a netlink socket: the family id, registering for the exit
// notifications of tasks on a CPU list ("0-3"), and the task counts in one
// received message (at most `room`; a message carries a task's and, when
// its thread group ends, the group's).
int taskstats_family_id(int fd, std::string& error);
bool send_register(int fd, int family, const std::string& cpus, std::string& error);
std::size_t parse_task_message(const char* message, std::size_t length, TaskCounts* out, std::size_t room);

}  // namespace cowsnap::detail
