"""A calibration you can read: the harness against plain C on this machine.

The measuring of `cowsnap calibrate` (the command is in cowsnap.cli, the
paired table in cowsnap.analyse.calibration). It runs the same work through
the harness (cowsnap.measure.bench.runner: cppyy's library starts the C++
benchmark, cowsnap-bench) and as `cowsnap-calibrate`, a small plain C program
(native/calibrate/calibrate.c) compiled in the same build: one writer writes
every element of an array of 4 KiB pages once, with no snapshot (write),
after a forked child copied the array and exited (reuse), and while a forked
child holds its copy (copy). Plain C runs twice: alone, and with threads
parked beside its writer as the harness's process has. Per run it derives
fork ms/GiB, empty fork ms, reuse-fault and copy-fault ns/page.

The runs go in rounds: round k runs each side once, the order alternating
(forward in even rounds, backward in odd ones), so whatever the machine does
at round k it does to every side, and no side always runs first or last;
the analysis pairs the sides round by round.

Both sides start each run from the same machine state: the memory the run
allocates (the array, the child's copy, the writer's COW copies) touched
and freed first, so a host that backs freed memory lazily backs it again
(warm=False: the machine as it is). Each run also records what a fresh page
cost just before its copy phase's fork (fresh_page_us) and the memory the
machine reported to its host meanwhile (host_reported_kib), which the
analysis reads to explain a gap.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from cowsnap.measure import host, native
from cowsnap.measure.bench import runner
from cowsnap.plan import config, grid
from cowsnap.plan import point as plan_point
from cowsnap.plan.point import Point

PROGRAM = native.CALIBRATE
SIDES = ("plain_c", "plain_c_threads", "harness")
# plain_c_threads: plain C with as many threads parked beside its writer as
# the harness's process has while the child copies (its main thread, and the
# helper that waits for the snapshot's end): what being a multi-threaded
# process costs, apart from the harness.
PARKED_THREADS = 2
# What both sides measure (seconds, and the array's pages).
KEYS = ("fork_empty_s", "fork_s", "write_s", "write_after_exit_s", "write_during_copy_s", "pages")
# The derived quantities, in table order, with the labels the table shows.
QUANTITIES = {
    "fork_ms_per_gib": "fork (ms/GiB)",
    "fork_empty_ms": "empty fork (ms)",
    "reuse_ns_per_page": "reuse fault (ns/page)",
    "copy_ns_per_page": "copy fault (ns/page)",
}
# The harness points: one writer over the whole array (as plain C's main
# thread), one copier into fresh memory, 4 KiB pages, no release, no extra
# counters that plain C does not pay for.
BASE = {
    "writers": 1,
    "copiers": 1,
    "pattern": "blocked",
    "backing": "4k",
    "memcpy_mib": 0,
    "delayacct": False,
    "dest": "fresh",
}
POINTS = {
    "write": {"method": "none"},
    "reuse": {"method": "fork", "start": "after_child", "hold": "copy", "release": "none"},
    "copy": {"method": "fork", "start": "with_child", "hold": "writers", "release": "none"},
}


class CalibrationError(RuntimeError):
    """One side could not measure; the message says which and why."""


def c_program(build_dir: Path, size_mib: int, batch_kib: int, parked_threads: int = 0, warm_mib: int = 0) -> dict:
    """One run of the plain C program of the build in build_dir."""
    program = Path(build_dir) / PROGRAM
    if not program.exists():
        raise CalibrationError(
            f"{program}: missing (the build compiles native/calibrate/calibrate.c beside {native.LIBRARY})"
        )
    command = [str(program), str(size_mib), str(batch_kib), str(parked_threads), str(warm_mib)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise CalibrationError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    values = json.loads(done.stdout)
    missing = [key for key in KEYS if key not in values]
    if missing:
        raise CalibrationError(f"{program} printed no {', '.join(missing)}: {done.stdout.strip()}")
    return values


def harness_point(name: str, size_mib: int, batch_kib: int, warm_mib: int = 0) -> Point:
    """The resolved point of one harness measurement."""
    settings = {"size_mib": size_mib, "batch_kib": batch_kib, "warm_mib": warm_mib, **BASE, **POINTS[name]}
    try:
        return grid.point_of(settings)
    except config.ConfigError as error:
        raise CalibrationError(f"harness point {name!r}: {error}") from error


def warm_mib_of(size_mib: int, batch_kib: int) -> int:
    """What a run allocates (the array, the child's copy, the writer's COW copies)."""
    return plan_point.memory_needed_mib(harness_point("copy", size_mib, batch_kib))


def _record(name: str, size_mib: int, batch_kib: int, build: native.Build, warm_mib: int) -> dict:
    point = harness_point(name, size_mib, batch_kib, warm_mib)
    record = runner.run(point, build)
    if record.get("status") != "ok":
        settings = " ".join(f"{key}={value}" for key, value in {"size_mib": size_mib, **POINTS[name]}.items())
        reason = record.get("reason") or "no reason given"
        raise CalibrationError(f"harness point {name!r} ({settings}) is {record.get('status')}: {reason}")
    return record


def harness(build: native.Build, size_mib: int, batch_kib: int, warm_mib: int = 0) -> dict:
    """The harness's measurements of the work plain C does (the same keys)."""
    write = _record("write", size_mib, batch_kib, build, warm_mib)
    reuse = _record("reuse", size_mib, batch_kib, build, warm_mib)
    copy = _record("copy", size_mib, batch_kib, build, warm_mib)
    return {
        "fresh_page_us": copy["fresh_page_us"],
        "fork_empty_s": copy["fork_empty_s"],
        "fork_s": copy["fork_s"],
        "write_s": write["writers_s"],
        "write_after_exit_s": reuse["writers_s_after_snapshot"],
        # writers_s starts before fork(): take the fork's pause out, as plain C
        # starts its writer's clock when fork() returns.
        "write_during_copy_s": copy["writers_s"] - copy["snapshot_pause_s"],
        "pages": int(copy["pages"]),
    }


def derive(values: dict, size_mib: int) -> dict:
    """The table's quantities from one run's measurements."""
    pages = values["pages"]
    return {
        "fork_ms_per_gib": values["fork_s"] * 1000 / (size_mib / 1024),
        "fork_empty_ms": values["fork_empty_s"] * 1000,
        "reuse_ns_per_page": (values["write_after_exit_s"] - values["write_s"]) * 1e9 / pages,
        "copy_ns_per_page": (values["write_during_copy_s"] - values["write_s"]) * 1e9 / pages,
    }


def round_order(sides, repetition: int) -> tuple:
    """The order of the sides in round `repetition`: as given in even rounds,
    reversed in odd ones, so of any two sides each runs first in every other
    round."""
    sides = tuple(sides)
    return sides if repetition % 2 == 0 else sides[::-1]


def measure(
    build: native.Build,
    sizes_mib=(256, 1024),
    repetitions: int = 5,
    batch_kib: int = 2048,
    sides=SIDES,
    progress: Callable[[str], None] | None = None,
    warm: bool = True,
) -> pd.DataFrame:
    """One row per (size, side, repetition): the measurements, the machine's
    share beside them (absent where not read) and the quantities.

    Repetition k is a round: one run of each side, in the order of sides in
    even rounds and the reverse in odd ones (round_order), so a drift of the
    machine during the calibration hits every side alike and the sides can
    be paired round by round; with warm, each run first brings back what it
    allocates (warm_mib_of), on both sides alike."""
    sides = tuple(sides)
    unknown = set(sides) - set(SIDES)
    if unknown:
        raise ValueError(f"sides: {sorted(unknown)}; known: {', '.join(SIDES)}")
    rows = []
    for size_mib in sizes_mib:
        warm_mib = warm_mib_of(size_mib, batch_kib) if warm else 0
        for repetition in range(repetitions):
            for side in round_order(sides, repetition):
                if progress:
                    progress(f"{side} size_mib={size_mib} repetition {repetition + 1}/{repetitions}")
                before = host.counters()
                if side == "plain_c":
                    values = c_program(build.directory, size_mib, batch_kib, 0, warm_mib)
                elif side == "plain_c_threads":
                    values = c_program(build.directory, size_mib, batch_kib, PARKED_THREADS, warm_mib)
                else:
                    values = harness(build, size_mib, batch_kib, warm_mib)
                reported = host.during(before, host.counters()).get("host_reported_kib")
                machine = {"fresh_page_us": values.get("fresh_page_us"), "host_reported_kib": reported}
                values = {key: values[key] for key in KEYS}
                rows.append(
                    {
                        "size_mib": size_mib,
                        "batch_kib": batch_kib,
                        "warm_mib": warm_mib,
                        "side": side,
                        "repetition": repetition,
                        **values,
                        **{key: value for key, value in machine.items() if value is not None},
                        **derive(values, size_mib),
                    }
                )
    return pd.DataFrame(rows)
