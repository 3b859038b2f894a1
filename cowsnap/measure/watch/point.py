"""A watch point (method=watch): a program of the user's next to the benchmark.

The program (watch_command) runs under cowsnap watch's tracker (cowsnap.measure.watch)
in an empty folder of its own, held at known points by the point's commands,
each run in that folder:

1. start the program; run ready_command every READY_POLL_S until it exits 0;
2. run setup_command once (it must exit 0);
3. start load_command and let it run load_lead_s;
4. read every counter (the phase before the snapshot ends here), run
   snapshot_command (or wait for the program to fork by itself) and wait
   until every child the program forked since then has exited; read every
   counter again: the phase while the snapshot lived (_during_snapshot);
5. run after_command, and watch watch_after_s more seconds, or until the
   program exits by itself: the phase after the snapshot (_after_snapshot);
6. stop the load and the program: SIGTERM to each one's process group, then
   SIGKILL; also when a step failed or the run was interrupted, and the
   kernel kills each process started here if this one dies (PR_SET_PDEATHSIG).

Each step the watch waits for must end within timeout_s. A command that is
not installed skips the point with the reason; a step that fails or takes
too long fails it, with the command's last line of output in the reason.

The record uses the benchmark's keys where the quantity is the same: the
program's threads are the writers (writer_wpcopy_count, writer_minflt, ...,
per phase), its children the child (child_wpcopy_count, ...), and the
system-wide /proc/vmstat deltas are per phase (pgreuse, ...). A count that
could not be read is absent, its source key saying why, never 0.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from cowsnap.measure import checks, environment, knobs, native, records, spawn
from cowsnap.measure.watch import proc, server
from cowsnap.measure.watch.tracker import COUNTERS, Process, Watch
from cowsnap.plan import grid
from cowsnap.plan import point as plan_point
from cowsnap.plan.commands import run_environment
from cowsnap.plan.point import PHASE_SUFFIXES, SNAPSHOT_PHASES

READY_POLL_S = 0.05  # between two runs of ready_command
POLL_S = 0.05  # between two readings of the watched processes while waiting
STOP_GRACE_S = 5.0  # from SIGTERM to SIGKILL when a process group is stopped
EXIT_NOTICE_S = 1.0  # for the exit notification of a program that exited by itself
TAIL_CHARS = 300  # of a command's output, in a reason
# The record's phases and the watch's readings that close them.
PHASES = PHASE_SUFFIXES
# The children's counters in the record (child_<counter>, both phases summed).
CHILD_COUNTERS = ("wpcopy_count", "wpcopy_delay_s", "minflt", "majflt", "utime_s", "stime_s", "private_dirty_pages")


class StepFailed(RuntimeError):
    """A step of the point failed; the message is the record's reason."""


def argv(command: str) -> list[str]:
    return shlex.split(command)


def commands(point: dict) -> dict[str, list[str]]:
    """The point's commands that are set, by key."""
    return {key: argv(point[key]) for key in grid.COMMAND_KEYS if point[key].strip()}


def skip_reason(point: dict) -> str:
    """Why this machine cannot run the point as asked ('' when it can)."""
    path = run_environment()["PATH"]
    for key, words in commands(point).items():
        if shutil.which(words[0], path=path) is None:
            return f"{key}: {words[0]} is not installed here (not found on PATH, or not executable)"
    if point["thp_mode"] != "keep" and not environment.THP_DIR.exists():
        return f"thp_mode={point['thp_mode']}: this kernel has no transparent huge pages"
    return checks.knob_skip_reason(point, checks.host_mode_knobs(point))


def exit_status(process: subprocess.Popen) -> int | None:
    """The exit status of a process that exited (128 + N after signal N),
    None while it runs; it is not reaped, so its process group id stays its own."""
    if process.returncode is not None:
        code = process.returncode
        return code if code >= 0 else 128 - code
    info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    if info is None or info.si_pid == 0:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else 128 + info.si_status


class Started:
    """The processes a point started, each leading its own process group
    and writing its output to <folder>/<key>.out."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.processes: list[subprocess.Popen] = []
        self.environment = run_environment()  # once: ready_command is started every READY_POLL_S

    def start(self, key: str, words: list[str]) -> subprocess.Popen:
        with open(self.folder / f"{key}.out", "ab") as out:
            try:
                process = subprocess.Popen(
                    words,
                    cwd=self.folder,
                    env=self.environment,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=spawn.die_with_parent,
                )
            except OSError as error:
                raise StepFailed(f"{key}: cannot run {words[0]!r}: {error.strerror}") from None
        self.processes.append(process)
        return process

    def tail(self, key: str) -> str:
        """The last line of a command's output, for a reason."""
        try:
            lines = (self.folder / f"{key}.out").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f": {lines[-1][-TAIL_CHARS:]}" if lines else " (no output)"

    def finish(self, process: subprocess.Popen) -> int | None:
        """A command that ended (or not): stops what it left running in its
        process group and reaps it; its exit status (None if it had not ended)."""
        status = exit_status(process)
        stop(process)
        self.processes.remove(process)
        return status

    def stop_all(self) -> None:
        """Stops every process group started, the last started first."""
        for process in reversed(self.processes):
            stop(process)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process's group, SIGKILL to what is left of it after
    STOP_GRACE_S, then reaps the process (only then may its id be reused)."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while exit_status(process) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


class WatchedProgram:
    """A watch point's program as it runs: the watch, what was started, the steps."""

    def __init__(self, point: dict, the_watch: Watch, started: Started):
        self.point = point
        self.watch = the_watch
        self.started = started
        self.program: subprocess.Popen | None = None
        self.load: subprocess.Popen | None = None
        self.program_may_end = False  # in the phase after the snapshot: an exit with 0 ends the watch

    # -- checks made while waiting

    def check(self) -> None:
        """StepFailed when the program or the load has failed."""
        status = exit_status(self.program)
        if status is not None and not (self.program_may_end and status == 0):
            stage = "after the snapshot" if self.program_may_end else "before the snapshot ended"
            raise StepFailed(f"watch_command exited with status {status} {stage}{self.started.tail('watch_command')}")
        if self.load is not None:
            status = exit_status(self.load)
            if status:
                raise StepFailed(f"load_command exited with status {status}{self.started.tail('load_command')}")

    def program_ended(self) -> bool:
        return self.program_may_end and exit_status(self.program) == 0

    def wait(self, done, limit_s: float, too_long=None) -> None:
        """Follows the processes (children found, exits received) until
        done() is true; after limit_s, StepFailed(too_long) (a text, or a
        function giving it), or returns when too_long is None (a plain wait)."""
        deadline = self.watch.now() + limit_s
        while not done():
            self.check()
            if self.watch.now() >= deadline:
                if too_long is None:
                    return
                raise StepFailed(too_long() if callable(too_long) else too_long)
            self.watch.receive(min(POLL_S, max(0.0, deadline - self.watch.now())))
            self.watch.sample()

    def run_command(self, key: str) -> None:
        """Runs the point's command to its end; StepFailed unless it exits 0 in time."""
        if not self.point[key].strip():
            return
        process = self.started.start(key, argv(self.point[key]))
        timeout = self.point["timeout_s"]
        too_long = f"{key} did not end within timeout_s={timeout:g} s"
        self.wait(lambda: exit_status(process) is not None, timeout, too_long)
        status = self.started.finish(process)
        if status != 0:
            raise StepFailed(f"{key} exited with status {status}{self.started.tail(key)}")

    # -- the steps

    def ready(self) -> None:
        """ready_command, again every READY_POLL_S until it exits 0."""
        if not self.point["ready_command"].strip():
            return
        timeout = self.point["timeout_s"]
        deadline = self.watch.now() + timeout
        last = ""
        while True:
            process = self.started.start("ready_command", argv(self.point["ready_command"]))
            self.wait(lambda p=process: exit_status(p) is not None, max(0.0, deadline - self.watch.now()))
            status = self.started.finish(process)
            if status == 0:
                return
            if status is not None:
                last = f"ready_command last exited with status {status}{self.started.tail('ready_command')}"
            if self.watch.now() >= deadline:
                raise StepFailed(
                    f"watch_command not ready within timeout_s={timeout:g} s: {last or 'ready_command did not end'}"
                )
            self.wait(lambda: False, READY_POLL_S)

    def snapshot(self) -> tuple[float, list[Process]]:
        """Triggers the snapshot and waits for its children's exit: (when it
        was triggered, the children forked since)."""
        known = set(self.watch.processes)
        mark = self.watch.now()
        trigger = None
        if self.point["snapshot_command"].strip():
            trigger = self.started.start("snapshot_command", argv(self.point["snapshot_command"]))

        def forked() -> list[Process]:
            return [p for pid, p in self.watch.processes.items() if pid not in known and p.role == "child"]

        def ended() -> bool:
            # The children running the program's own code end it; a helper (a child that exec'd another
            # program, such as a fork server) may live on with the program, unless it is the only child.
            children = forked()
            waited = [p for p in children if p.same_program] or children
            return (
                (trigger is None or exit_status(trigger) is not None)
                and bool(children)
                and not any(p.alive for p in waited)
            )

        timeout = self.point["timeout_s"]
        how = "after snapshot_command" if trigger is not None else "(no snapshot_command: the program forks itself)"

        def too_long() -> str:
            children = forked()
            return f"the snapshot did not end within timeout_s={timeout:g} s {how}: " + (
                f"{len(children)} children forked, {sum(p.alive and p.same_program for p in children)} still running"
                if children
                else "the program forked no child"
            )

        self.wait(ended, timeout, too_long)
        status = self.started.finish(trigger) if trigger is not None else 0
        if status != 0:
            raise StepFailed(f"snapshot_command exited with status {status}{self.started.tail('snapshot_command')}")
        for child in forked():
            if child.exit_code:
                raise StepFailed(
                    f"the snapshot child {child.pid} ({child.comm}) exited with wait status {child.exit_code}"
                )
        return mark, forked()

    def after(self) -> None:
        """after_command, then watch_after_s of watching, or until the program exits with 0."""
        self.program_may_end = True
        began = self.watch.now()
        process = (
            self.started.start("after_command", argv(self.point["after_command"]))
            if (self.point["after_command"].strip())
            else None
        )
        timeout = self.point["timeout_s"]
        self.wait(
            lambda: self.program_ended() or process is None or exit_status(process) is not None,
            timeout,
            f"after_command did not end within timeout_s={timeout:g} s",
        )
        status = self.started.finish(process) if process is not None else 0
        if status not in (None, 0):  # None: the program ended first, and the command was stopped
            raise StepFailed(f"after_command exited with status {status}{self.started.tail('after_command')}")
        left = self.point["watch_after_s"] - (self.watch.now() - began)
        self.wait(self.program_ended, max(0.0, left), None)
        if self.program_ended():
            # Its final counts come with its exit notification.
            self.wait(lambda: not self.watch.root_alive(), EXIT_NOTICE_S, None)
            if self.watch.root_alive():
                self.watch.end(self.watch.processes[self.watch.root], self.watch.now())


def phase_values(rows: list[dict], phase: str) -> dict:
    """The record's keys of one phase from the rows of the reading that closed it."""
    values: dict[str, float] = {}
    program = [r for r in rows if r["scope"] == "process" and r["role"] == "watched"]
    system = next(r for r in rows if r["scope"] == "system-wide")
    for counter in COUNTERS:
        total = sum(r[counter] for r in program)
        if program and not math.isnan(total):
            values[f"writer_{counter}{phase}"] = total
    for key in proc.VMSTAT_KEYS:
        values[f"{key}{phase}"] = system.get(key, math.nan)
    values[f"watch_s{phase}"] = system["t_end_s"] - system["t_start_s"]
    return {k: v for k, v in values.items() if not math.isnan(v)}


def child_values(rows: list[dict]) -> dict:
    """The children's counts over both phases, summed (absent where one is not counted)."""
    children = [r for r in rows if r["scope"] == "process" and r["role"] == "child"]
    values = {}
    for counter in CHILD_COUNTERS:
        total = sum(r[counter] for r in children)
        if children and not math.isnan(total):
            values[f"child_{counter}"] = total
    return values


def source(the_watch: Watch, rows: list[dict]) -> str:
    """Where copies came from ('taskstats'), or why they are not all counted."""
    why = the_watch.uncounted("wpcopy_count")
    unaccounted = sum(r["unaccounted_minflt"] for r in rows if r["scope"] == "process")
    if not why and unaccounted > 0:
        why = (
            f"not counted: {unaccounted:,.0f} minor faults of threads without delay accounting "
            "(started while kernel.task_delayacct was 0)"
        )
    return why or "taskstats"


def measured(the_watch: Watch, mark: float, children: list, during: list[dict], after: list[dict]) -> dict:
    """The record's measured keys from the readings that closed the two phases."""
    the_watch.settle()
    values = {**phase_values(during, PHASES[0]), **phase_values(after, PHASES[1])}
    for key in [k.removesuffix(PHASES[0]) for k in values if k.endswith(PHASES[0])]:
        if f"{key}{PHASES[1]}" in values:
            values[key] = values[f"{key}{PHASES[0]}"] + values[f"{key}{PHASES[1]}"]
    values.update(child_values(during + after))
    values["writer_wpcopy_source"] = source(the_watch, [r for r in during + after if r.get("role") == "watched"])
    values["child_wpcopy_source"] = source(the_watch, [r for r in during + after if r.get("role") == "child"])
    values["snapshot_end_s"] = max(p.end_s for p in children if p.end_s is not None) - mark
    values["children"] = len(children)
    values["page_bytes"] = proc.PAGE_BYTES  # the unit of the page counts: the watched kernel's base page
    values.update(role_values(the_watch))
    return values


def role_values(the_watch: Watch) -> dict:
    """Per child role present (cowsnap.plan.methods.CHILD_ROLES): how many, their copies
    (all, and per phase) with the source, each one's private dirty pages at
    its peak summed; a count that could not be read is absent."""
    values: dict = {}
    for role, entry in the_watch.role_totals().items():
        stem = role.replace(" ", "_")
        values[f"{stem}_count"] = entry["count"]
        values[f"{stem}_wpcopy_source"] = entry["source"]
        counts = {
            f"{stem}_wpcopy_count": entry["wpcopy_count"],
            f"{stem}_private_dirty_pages": entry["private_dirty_pages"],
            **{f"{stem}_wpcopy_count_{phase}": entry["phases"].get(phase, 0.0) for phase in SNAPSHOT_PHASES},
        }
        values.update({key: value for key, value in counts.items() if not math.isnan(value)})
    return values


def measure(point: dict, build: native.Build, folder: Path, partial: Path | None = None) -> dict:
    """Runs the point's steps under a watch; its measured keys (status ok),
    or status failed with the reason. Everything started is stopped. A run
    that fails or is stopped (SIGTERM, SIGINT) leaves the timeline it had
    read in `partial` (a CSV), so the user sees how far it got."""
    reason = "" if point["delayacct"] else "delayacct=false: kernel.task_delayacct is 0 for the run"
    the_watch = Watch(native.load(build.library), 0, reason)
    started = Started(folder)
    try:
        words = argv(point["watch_command"])
        running = WatchedProgram(point, the_watch, started)
        running.program = started.start("watch_command", words)
        the_watch.adopt(running.program.pid, Path(words[0]).name[:15])
        running.ready()
        running.run_command("setup_command")
        if point["load_command"].strip():
            running.load = started.start("load_command", argv(point["load_command"]))
        running.wait(lambda: False, point["load_lead_s"], None)
        pages = proc.anon_pages(running.program.pid)
        the_watch.tick()  # the phase before the snapshot ends here
        mark, children = running.snapshot()
        during = the_watch.tick()
        running.after()
        running.check()
        after = the_watch.tick()
        values = measured(the_watch, mark, children, during, after)
        if point["report_command"].strip():
            running.run_command("report_command")
            values.update(server.read((folder / "report_command.out").read_text(errors="replace")))
        values["anon_pages"] = pages
        values["delayacct_effective"] = knobs.current(knobs.TASK_DELAYACCT) == "1"
        return {**records.ok(), **values}
    except StepFailed as error:
        keep_timeline(the_watch, partial)
        return records.failed(str(error) + (f" (its timeline so far: {partial})" if partial else ""))
    except BaseException:
        keep_timeline(the_watch, partial)
        raise
    finally:
        started.stop_all()


def keep_timeline(the_watch: Watch, path: Path | None) -> None:
    """The rows read so far, and a last reading, as a CSV at path."""
    if path is None:
        return
    import pandas as pd

    with contextlib.suppress(Exception):  # a reading of processes already gone
        the_watch.tick()
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(the_watch.rows).to_csv(path, index=False)


def measured_here(point: dict, build: native.Build, partial: Path | None = None) -> dict:
    """The point's measured keys on the machine this runs on, its knobs
    already set (by run, or by a VM guest's script): skipped with the reason
    when it cannot run here; its program runs in a new folder of its own."""
    reason = skip_reason(point)
    if reason:
        return records.skipped(reason)
    folder = Path(tempfile.mkdtemp(prefix="cowsnap-watch."))
    try:
        return measure(point, build, folder, partial)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(point: dict, build: native.Build, ids: dict | None = None, partial: Path | None = None) -> dict:
    """The record of one watch point: ids, its settings, environment, build,
    measurements (partial: where a failed or stopped run leaves its timeline).
    A point with a vm_kernel runs in a VM booting that kernel instead
    (cowsnap.measure.guests.run_boot, measured_here in the guest)."""
    point = plan_point.planned(point)
    assert not plan_point.is_vm(point), "a point with a vm_kernel runs in its boot: cowsnap.measure.guests"
    record = {**records.opened(grid.recorded_settings(point), build, ids), "virtualized": "none"}
    reason = skip_reason(point)
    if reason:
        return records.skipped_here(record, reason)
    try:
        with knobs.applied(checks.host_mode_knobs(point)):
            record.update(environment.capture(environment.REPO))  # read back under the knobs
            return {**record, **measured_here(point, build, partial)}
    except knobs.KnobError as error:
        return records.skipped_here(record, str(error))
