"""cowsnap watch: is MY program copying? The sweep's proof, for any process.

    cowsnap watch [options] -- COMMAND [ARGS...]
    cowsnap watch --pid PID [--for SECONDS] [options]

Options: --interval SECONDS (1), --sharing, --out DIR, --build-dir DIR.

Every interval it reads, per process: COW copies and the time spent in them
(taskstats wpcopy_count / wpcopy_delay_total, for threads with delay
accounting), the snapshot children's private dirty pages (smaps_rollup,
every 50 ms while one lives), minor and major faults and user and kernel
time (/proc/PID/stat), time waiting for a CPU (taskstats cpu_delay_total),
and the system-wide /proc/vmstat deltas of pgreuse, thp_split_pmd,
thp_fault_alloc and pgfault (other programs count there too). With
--sharing, the process's private anonymous pages still shared with another
process (/proc/PID/pagemap bit 56 clear), at a cost it reports.

Nothing touches the watched program: no ptrace, no signals, no injected code.
Delay accounting (kernel.task_delayacct) is switched on for the watch when
this user may (cowsnap.measure.knobs: restored afterwards, also when the
watch is stopped; after a SIGKILL the next watch or run restores it from the
journal). A count that cannot be read is "not counted: <reason>", never 0.

Stopping: Ctrl-C (SIGINT), SIGTERM and SIGHUP each end the watch the same
way: a command it started (in a process group of its own) gets SIGTERM,
then SIGKILL after STOP_GRACE_S; the watch takes its final reading, prints
the verdict, writes --out, puts the knobs back and exits with 128 + the
signal's number. A second signal while it finishes ends it at once; the
knobs are still put back.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from cowsnap.analyse.watch import report as watch_report
from cowsnap.measure import knobs, native
from cowsnap.measure.watch import proc
from cowsnap.measure.watch.tracker import Watch, boot_clock
from cowsnap.plan import config

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_GRACE_S = 5.0  # from SIGTERM to SIGKILL for a command the watch started


class Stopped(BaseException):
    """A second stop signal: end at once (the knobs are still restored)."""


def default_build_dir() -> Path:
    """The per-user build cache ($XDG_CACHE_HOME/cowsnap/build): a watch
    started from any folder builds once."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "cowsnap" / "build"


def delay_accounting() -> tuple[dict, str, float | None]:
    """The knob change the watch asks for, why copies cannot be counted ('' if
    they can), and since when (CLOCK_BOOTTIME) delay accounting is known to be
    on, when it is on already: since boot with the `delayacct` boot
    parameter, else only since now."""
    if os.geteuid() == 0:
        knobs.restore_journal()  # a watch or run killed with SIGKILL left it changed
    if knobs.current(knobs.TASK_DELAYACCT) == "1":
        booted_with = "delayacct" in Path("/proc/cmdline").read_text().split()
        return {}, "", 0.0 if booted_with else None
    if not knobs.TASK_DELAYACCT.exists():
        return {}, "this kernel has no delay accounting (/proc/sys/kernel/task_delayacct missing)", None
    if os.geteuid() != 0:
        return {}, "kernel.task_delayacct is 0 and only root may switch it on", None
    return {knobs.TASK_DELAYACCT: "1"}, "", None


def check_writable(folder: Path) -> None:
    """WatchError now, not after the whole watch, when --out cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise proc.WatchError(f"--out {folder}: cannot write there: {error.strerror}") from None


USAGE = """cowsnap watch [--for SECONDS] [--interval SECONDS] [--sharing] [--out DIR] -- COMMAND [ARGS...]
       cowsnap watch --pid PID [--for SECONDS] [--interval SECONDS] [--sharing] [--out DIR]
       (both also take --build-dir DIR and --cxxflags FLAGS)"""


def build_parser() -> argparse.ArgumentParser:
    """The watch's options; `-- COMMAND [ARGS...]` is split off before them (parse_args)."""
    parser = argparse.ArgumentParser(prog="cowsnap watch", usage=USAGE, description=__doc__.split("\n\n")[0])
    parser.add_argument("--pid", type=int, help="watch this running process")
    parser.add_argument(
        "--for", dest="duration", type=float, metavar="SECONDS", help="seconds to watch (default: until it exits)"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS", help="seconds between readings (default 1)"
    )
    parser.add_argument("--sharing", action="store_true", help="count anonymous pages still shared (pagemap)")
    parser.add_argument(
        "--out", type=config.output_path("--out"), help="write timeline.csv, watch.json and timeline.png/.pdf here"
    )
    parser.add_argument(
        "--build-dir", type=Path, default=default_build_dir(), help="native build cache (default: %(default)s)"
    )
    parser.add_argument(
        "--cxxflags",
        default=config.schema()["properties"]["cxxflags"]["default"],
        help="compiler flags of the native library (default: %(default)s; the config's cxxflags)",
    )
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    command: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, command = argv[:at], argv[at + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command = command
    if bool(args.pid) == bool(command):
        parser.error("give either --pid PID or -- COMMAND [ARGS...]")
    if not (math.isfinite(args.interval) and args.interval > 0):
        parser.error(f"--interval must be a number of seconds above 0, not {args.interval}")
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration >= 0):
        parser.error(f"--for must be a number of seconds of at least 0, not {args.duration}")
    return args


def load_native(build_dir: Path, cxxflags: str):
    return native.load(native.ensure_built(build_dir, cxxflags).library)


def write_outputs(out_dir: Path, watch: Watch, result: dict) -> list[Path]:
    """timeline.csv (one row per interval and process, plus a system-wide
    row per interval), watch.json (totals, events, verdict) and
    timeline.png/.pdf."""
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(watch.rows).astype({"pid": "Int64"})
    table.to_csv(out_dir / "timeline.csv", index=False)
    (out_dir / "watch.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    return [
        out_dir / "timeline.csv",
        out_dir / "watch.json",
        *watch_report.draw_timeline(table, watch, out_dir / "timeline"),
    ]


def stop_command(child: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to the command's process group, SIGKILL after grace_s (at
    once when 0)."""
    for signum in (signal.SIGTERM, signal.SIGKILL) if grace_s else (signal.SIGKILL,):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(grace_s or None)
            return


def run(args: argparse.Namespace, stream=None) -> int:
    stream = stream or sys.stdout
    if args.pid is not None:
        proc.check_may_watch(args.pid)
    if args.out:
        check_writable(args.out)
    native_ns = load_native(args.build_dir, args.cxxflags)
    wanted, reason, since = delay_accounting()
    stop: dict = {"signal": None}

    def on_signal(signum, _frame):
        if stop["signal"] is not None:
            raise Stopped(signum)
        stop["signal"] = signum

    child = None
    with contextlib.ExitStack() as stack:
        if wanted:
            try:
                stack.enter_context(knobs.applied(wanted))
                since = boot_clock()
            except knobs.KnobError as error:
                reason = str(error)
        # After the knobs' own handlers (which would end the watch with nothing kept).
        for signum in STOP_SIGNALS:
            stack.callback(signal.signal, signum, signal.signal(signum, on_signal))
        # The exit listener exists before the command starts: its first exits count.
        watch = Watch(native_ns, args.pid or 0, reason, args.sharing, since)
        if args.command:
            try:
                child = subprocess.Popen(args.command, process_group=0)
            except OSError as error:
                raise proc.WatchError(f"cannot run {args.command[0]!r}: {error.strerror}") from None
            # However the watch ends (a second signal included), its command ends with it.
            stack.callback(lambda: child.poll() is None and stop_command(child, grace_s=0))
            watch.adopt(child.pid, Path(args.command[0]).name[:15])
        else:
            watch.start()
        display = watch_report.Display(watch, stream)
        display.begin()
        follow(watch, display, child, args, stop)
        if stop["signal"] is not None:
            name = signal.Signals(stop["signal"]).name
            stream.write(
                f"cowsnap watch: stopping ({name}): a last reading, then the verdict; a second signal ends it now\n"
            )
            stream.flush()
        if child is not None and child.poll() is None:  # stopped, or --for is over
            stop_command(child)
            watch.receive(0.2)  # its exit notification
        if not watch.rows or watch.last_tick < watch.now() - 1e-3:
            display.show(watch.tick())
        result = watch.result()
        result["verdict"] = watch_report.verdict_lines(result)
        result["command"] = args.command
        if child is not None:
            result["command_exit_code"] = child.poll()
        if stop["signal"] is not None:
            result["ended_by"] = signal.Signals(stop["signal"]).name
        display.end(result)
        if args.out:
            try:
                paths = write_outputs(args.out, watch, result)
            except OSError as error:
                raise proc.WatchError(f"cannot write the watch's outputs to {args.out}: {error}") from None
            for path in paths:
                print(path, file=stream)
    if stop["signal"] is not None:
        return 128 + stop["signal"]
    # A command's exit status passes through (128 + N for a signal N).
    status = child.poll() if child is not None else None
    return 0 if not status else (status if status > 0 else 128 - status)


def follow(watch: Watch, display, child, args: argparse.Namespace, stop: dict) -> None:
    """Reads every interval until the root exits, --for is over, or a stop signal."""
    deadline = args.duration if args.duration is not None else math.inf
    next_tick = args.interval
    while stop["signal"] is None:
        now = watch.now()
        if now >= next_tick or now >= deadline:
            display.show(watch.tick())
            while next_tick <= watch.now():
                next_tick += args.interval
            if now >= deadline or not watch.root_alive():
                return
            continue
        if watch.root_alive() and (child.poll() is not None if child else watch.root_gone()):
            watch.receive(0.2)  # its exit notification is on the way
            if watch.root_alive():
                watch.end(watch.processes[watch.root], watch.now())
        watch.sample_memory()
        watch.receive(max(0.0, min(0.05, next_tick - now, deadline - now)))
        if not display.tty:
            display.show_events()
        if not watch.root_alive():
            return


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except proc.WatchError as error:
        print(f"cowsnap watch: {error}", file=sys.stderr)
        return 2
    except Stopped as stopped:
        signum = stopped.args[0]
        print(f"cowsnap watch: stopped at once by a second {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum
