"""The one verdict of cowsnap: is a phase copying, which count says so, and
which lever fits. The sweep's summary and `cowsnap watch` both use it, so a
phase with the same numbers reads the same in both.

Thresholds (pinned by tests/test_verdict.py):
- "not copying": fewer than COPYING_MIN_PAGES copies (a process copies a few
  stack and library pages after any fork), or copies under NOT_COPYING of
  the faults;
- "copying": at least MOSTLY of the faults;
- "partly copying": between.
"""

from __future__ import annotations

import math

from cowsnap.plan import methods

NOT_COPYING = 0.01
MOSTLY = 0.5
COPYING_MIN_PAGES = 256
# The verdict's words for a phase (copying_word), and for one whose copies
# no source counted; docs/watch.md states them (tests/test_verdict.py).
COPYING_WORD = "copying"
PARTLY_COPYING_WORD = "partly copying"
NOT_COPYING_WORD = "not copying"
NOT_COUNTED_WORD = "not counted"
COPIES_WORDS = (COPYING_WORD, PARTLY_COPYING_WORD)  # the words of a phase that copies
# A lever is named for one side (the parent, the children) only when that
# side made at least this share of the phase's copies.
LEVER_SHARE = 0.1
# After the snapshot, writes "reuse" pages when the reuses are at least this
# share of the faults.
REUSING_SHARE = 0.5
# Two counts of the same copies disagree when they differ by more than this
# share of the larger and by more than COPYING_MIN_PAGES pages.
DISAGREE_SHARE = 0.1
# Noise rules taken from pyperf and hyperfine: a point whose writers' time
# varies by more than NOISE_CV (coefficient of variation, pyperf's 10%) is
# unstable; a run whose modified z-score (0.6745 (x - median) / MAD) passes
# OUTLIER_Z is an outlier (hyperfine's 3.5 on the median absolute
# deviation). Writers that waited for a CPU for more than CPU_WAIT_SHARE of
# their thread time measured the scheduler as much as the kernel.
NOISE_CV = 0.10
OUTLIER_Z = 3.5
CPU_WAIT_SHARE = 0.10
# What the machine measured beside an unstable point's runs names its
# cause: the fresh-page probe or the memory bandwidth varying by more than
# NOISE_CV between runs, the machine reporting at least HOST_TOOK_SHARE of
# the point's array to its host during a run, the host stealing at least
# STEAL_SHARE of the machine's CPU time during a run, or writers waiting for
# a CPU (above).
HOST_TOOK_SHARE = 0.10
# Beside those causes, where an unstable point's spread lies: an observation, not a cause.
COPY_FAULT_SPREAD = "a copy fault's time"
STEAL_SHARE = 0.02
# A line fitted to runs over array sizes describes them when its R^2 is at
# least GOOD_FIT.
GOOD_FIT = 0.98
# The longest write was a writer's first when the first is at least
# FIRST_WRITE_SHARE of it (medians over runs; the first write counts from just
# before the snapshot begins), and the snapshot's start held it up when that
# start took at least START_SHARE of the first write.
FIRST_WRITE_SHARE = 0.9
START_SHARE = 0.5
# How to avoid it is concluded on three objectives, each a lever's ratio to
# its reference snapshot round by round (cowsnap.analyse.stats.comparison_table):
# the writers' total time, the tail (the longest write: a stop-the-world
# copy's stall shows there), and the memory the snapshot holds at its peak.
OBJECTIVES = {
    "writers_s": "writers' time",
    "write_max_s": "longest write",
    "snapshot_memory_mib": "snapshot memory",
}
# A resolved difference whose interval lies within NEGLIGIBLE of 1 is said
# to be that small (memory that differs by a few pages, say).
NEGLIGIBLE = 0.02
# A pool of workers is no snapshot: its programs are compared on what the
# workers copied and on their peak private memory.
POOL_OBJECTIVES = {
    "worker_wpcopy_count": "workers' copies",
    "worker_private_dirty_pages": "workers' peak private memory",
}
# Compared round by round too, not objectives: the tail while the snapshot lived.
ALSO_COMPARED = {"write_p999_s_during_snapshot": "p99.9 while it lived"}
# Clock sources the vDSO reads in user space (no system call), so a timed
# write pays one cheap clock read; on any other each read is a system call.
VDSO_CLOCKSOURCES = ("tsc", "kvm-clock", "hyperv_clocksource_tsc_page", "arch_sys_counter", "timebase",
                     "riscv_clocksource")  # fmt: skip


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def copy_share(copies: float, faults: float) -> float:
    """Copies as a share of the faults (all of them when there are copies but no faults)."""
    return copies / faults if faults else (1.0 if copies else 0.0)


def copying_word(copies: float, faults: float) -> str:
    """'copying', 'partly copying' or 'not copying' for one phase."""
    share = copy_share(copies, faults)
    if copies < COPYING_MIN_PAGES or share < NOT_COPYING:
        return NOT_COPYING_WORD
    return COPYING_WORD if share >= MOSTLY else PARTLY_COPYING_WORD


def disagree(a: float, b: float) -> bool:
    """Two counts of the same copies that differ beyond DISAGREE_SHARE."""
    gap = abs(a - b)
    return gap > COPYING_MIN_PAGES and gap > DISAGREE_SHARE * max(a, b)


def best_copies(phase: dict) -> tuple[float, str, str]:
    """A phase's copies from the best source it has: (copies, source, note).
    copies is NaN when no source counted them; the note then says why, and
    otherwise flags a second source that disagrees.

    phase holds wpcopy_count (taskstats, NaN when not counted),
    unaccounted_minflt (faults of threads the kernel keeps no delay
    accounting for: their copies are missing from wpcopy_count),
    private_dirty_pages (the children's, NaN when none lived or unreadable)
    and why_not (why taskstats did not count, '' when it did)."""
    taskstats, unaccounted = phase.get("wpcopy_count", math.nan), phase.get("unaccounted_minflt", 0.0)
    private = phase.get("private_dirty_pages", math.nan)
    exact = not is_missing(taskstats) and (is_missing(unaccounted) or unaccounted <= 0)
    if exact:
        note = ""
        if not is_missing(private) and disagree(taskstats, private):
            why = (
                "taskstats counts every copy, also of pages the children released since and of the shared zero page"
                if taskstats > private
                else "the children's own new memory counts in their private dirty pages"
            )
            note = (
                f"the children's private dirty pages ({private:,.0f}) disagree with taskstats ({taskstats:,.0f}): "
                + why
            )
        return taskstats, "taskstats", note
    if not is_missing(private):
        note = ""
        if not is_missing(taskstats) and taskstats > private and disagree(taskstats, private):
            note = f"taskstats counted {taskstats:,.0f} copies, more than the children's private dirty pages"
        return private, "child_private_dirty", note
    if not is_missing(taskstats):
        why = (
            f"taskstats counted {taskstats:,.0f}, but {unaccounted:,.0f} minor faults were taken by threads "
            "the kernel keeps no delay accounting for (started while kernel.task_delayacct was 0)"
        )
    else:
        why = phase.get("why_not") or "no source counted them"
    return math.nan, "", why


def count_command(pid: int | None = None) -> str:
    """The command that would count copies a watch could not."""
    return (
        "start the program with delay accounting on (`sysctl kernel.task_delayacct=1` before it starts, or "
        "`cowsnap watch -- COMMAND`); a snapshot child's copies are counted from its private dirty pages while "
        "it lives" + (f" (cowsnap watch --pid {pid})" if pid else "")
    )


CHILD_WRITES = (
    "the child writes memory it shares with the parent: allocate its buffers in the child, or mark a buffer "
    "allocated before fork MADV_DONTFORK"
)


def lever(phase_name: str, copies: float, child_copies: float, reuses: float, faults: float) -> str:
    """The lever from the sweep's findings for one phase ('' when none fits).
    phase_name: during_snapshot | after_snapshot; copies include the
    children's (child_copies, NaN when unknown)."""
    word = NOT_COPYING_WORD if is_missing(copies) else copying_word(copies, faults)
    if phase_name == "during_snapshot" and word != NOT_COPYING_WORD:
        levers = []
        children = 0.0 if is_missing(child_copies) else child_copies
        if copies - children >= LEVER_SHARE * copies:
            levers.append(
                "the parent copies pages the child still shares: have the child release each part as soon as "
                "it has saved it (munmap or MADV_DONTNEED per batch) and exit right after (_exit), so those "
                "writes reuse the page instead"
            )
        if children >= LEVER_SHARE * copies:
            levers.append(CHILD_WRITES)
        return "; ".join(levers) + "." if levers else ""
    if phase_name != "after_snapshot":
        return ""
    # A few faults (a fork's own stack pages) have nothing to gain from populating.
    if word == NOT_COPYING_WORD and faults >= COPYING_MIN_PAGES and reuses >= REUSING_SHARE * faults:
        return (
            "writes after the snapshot still fault once per page and reuse it (kernel time in fault "
            "handling, not copying): MADV_POPULATE_WRITE over the written memory right after the child "
            "exits takes those faults in one call."
        )
    if word != NOT_COPYING_WORD:
        return (
            "copies after the snapshot ended: something else still shares or pins the pages (another "
            "process, KSM, a GUP pin such as O_DIRECT, or split huge pages on kernels before 6.15)."
        )
    return ""


def mib(pages: float, page_bytes: int = 4096) -> str:
    return f"{pages * page_bytes / 2**20:,.1f} MiB"


def memory_words(
    copied_pages: float,
    anon_pages: float,
    source: str,
    page_bytes: int = 4096,
    of_what: str = "of anonymous memory the program had when it forked",
) -> str:
    """What the snapshot cost in memory: its copies against the memory it
    could have copied ('' when either is unknown)."""
    if is_missing(copied_pages) or is_missing(anon_pages) or anon_pages <= 0:
        return ""
    return (
        f"the snapshot copied {mib(copied_pages, page_bytes)} ({source}), "
        f"{copied_pages / anon_pages:.0%} of the {mib(anon_pages, page_bytes)} {of_what}: that much memory more "
        "while the snapshot lived"
    )


def worker_words(
    count: int, copied_pages: float, anon_pages: float, source: str, private_pages: float, forked_by_the_program=True
) -> str:
    """What a pool's workers cost in memory: their copies against what each
    shared with the parent at fork, or, where another process forked them
    (a fork server), against the program's memory at its first fork ('' when
    the copies are unknown)."""
    if is_missing(copied_pages):
        return ""
    workers = f"{count} worker{'s' if count != 1 else ''}"
    words = f"{workers} copied {mib(copied_pages)} ({source})"
    if not is_missing(anon_pages) and anon_pages > 0:
        share = f"{copied_pages / (count * anon_pages):.0%}"
        if forked_by_the_program:
            whose = "each shared with the parent at fork" if count != 1 else "it shared with the parent at fork"
        else:
            share += " each" if count != 1 else ""
            whose = "the program had at its first fork (another process forked them)"
        words += f", {share} of the {mib(anon_pages)} of anonymous memory {whose}"
    if not is_missing(private_pages):
        words += f"; their private memory peaked at {mib(private_pages)}"
    return words


# Interpreters whose reads write: reading an object writes its reference
# count, so a forked worker copies every page of objects it only reads.
READS_WRITE = ("python",)


def reads_write(comm: str) -> bool:
    return str(comm).startswith(READS_WRITE)


def duration(seconds) -> str:
    """'840 µs', '12.3 ms', '1.2 s' ('n/a' when missing): a latency in the unit that reads."""
    if is_missing(seconds):
        return "n/a"
    for unit, scale in (("µs", 1e6), ("ms", 1e3)):
        if seconds * scale < 1000:
            return f"{seconds * scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def writers_wait(row) -> bool:
    """The writers started only once the snapshot ended: as the benchmark
    recorded it (writers_wait), else as the methods' table says."""
    recorded = row.get("writers_wait")
    if str(recorded) in ("True", "False"):  # a bool, or its text in a table read back
        return str(recorded) == "True"
    return methods.writers_wait(row)


def longest_write_cause(row) -> str:
    """What held up a point's longest write (row: a points.csv row or a
    record), from its numbers: a writer's first write (it waited for the
    snapshot to begin, or, where the writers start after it, to end), or a
    write while the snapshot lived or after it ended. '' when not timed."""
    longest, first = row.get("write_max_s"), row.get("write_first_s")
    if is_missing(longest) or is_missing(first):
        return ""
    method = row.get("method")
    if first >= FIRST_WRITE_SHARE * longest and method in methods.SNAPSHOT_START:
        end, pause = row.get("snapshot_end_s"), row.get("snapshot_pause_s")
        paused = methods.METHODS[method].copiers_run == "instead"  # the snapshot is the writers' pause
        if not paused and writers_wait(row):
            return "the first write, waiting for the snapshot to end: the writers start after it"
        if not paused and not is_missing(end) and first >= end:
            return f"the first write: it ended only after the snapshot ended, at {duration(end)}"
        if not is_missing(pause) and pause >= START_SHARE * first:
            return f"the first write, held up by {methods.SNAPSHOT_START[method]} of {duration(pause)}"
        return f"the first write, after {methods.SNAPSHOT_START[method]} of {duration(pause)} and the threads' wake-up"
    if method not in methods.SNAPSHOT_START:
        return "a write (no snapshot)"
    phases = {"while the snapshot lived": row.get("write_max_s_during_snapshot"),
              "after the snapshot ended": row.get("write_max_s_after_snapshot")}  # fmt: skip
    timed = {words: value for words, value in phases.items() if not is_missing(value)}
    return f"a write {max(timed, key=timed.get)}" if timed else "a write"


def clock_words(clocksources) -> str:
    """What the runs' clock sources say about the cost of timing each write."""
    found = sorted({str(name) for name in clocksources if not is_missing(name)})
    if not found:
        return (
            "The runs do not record their clock source, so what timing each write cost them is not known here: "
            "`python tests/bench_write_latency.py` measures it."
        )
    slow = [name for name in found if name not in VDSO_CLOCKSOURCES]
    if not slow:
        return f"Clock source {', '.join(found)}: read in user space (vDSO), one cheap read per timed write."
    return (
        f"Clock source {', '.join(slow)}: not read in user space, so every timed write makes a system call and "
        "the times carry its cost; `python tests/bench_write_latency.py` measures it, `write_latency_kib` larger "
        "or 0 lowers it."
    )
