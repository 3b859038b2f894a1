"""A calibration you can read: the harness against plain C on this machine.

    cowsnap calibrate [--sizes 256,1024] [--repetitions 5] [--batch-kib 2048]
                      [--build-dir results/build] [--cxxflags ...] [--out DIR]

Runs the same work twice, through the harness (cowsnap.measure.runner: cppyy's
library starts the C++ benchmark, cowsnap-bench) and as `cowsnap-calibrate`, a small
plain C program (native/calibrate.c) compiled in the same build: one writer
writes every element of an array of 4 KiB pages once, with no snapshot
(write), after a forked child copied the array and exited (reuse), and while
a forked child holds its copy (copy). Plain C runs twice: alone, and with
threads parked beside its writer as the harness's process has. It prints,
for each array size, the medians of fork ms/GiB, empty fork ms, reuse-fault
and copy-fault ns/page on each side and the harness over each plain C: the
harness's distance from plain C on this machine, and how much of it being
multi-threaded explains.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from cowsnap.measure import native, runner
from cowsnap.plan import config

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


def c_program(build_dir: Path, size_mib: int, batch_kib: int, parked_threads: int = 0) -> dict:
    """One run of the plain C program of the build in build_dir."""
    program = Path(build_dir) / PROGRAM
    if not program.exists():
        raise CalibrationError(f"{program}: missing (the build compiles native/calibrate.c beside {native.LIBRARY})")
    command = [str(program), str(size_mib), str(batch_kib), str(parked_threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise CalibrationError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    values = json.loads(done.stdout)
    missing = [key for key in KEYS if key not in values]
    if missing:
        raise CalibrationError(f"{program} printed no {', '.join(missing)}: {done.stdout.strip()}")
    return values


def harness_point(name: str, size_mib: int, batch_kib: int) -> dict:
    """The full point (defaults filled in) of one harness measurement."""
    settings = {"size_mib": size_mib, "batch_kib": batch_kib, **BASE, **POINTS[name]}
    try:
        return config.validate_point(settings)
    except config.ConfigError as error:
        raise CalibrationError(f"harness point {name!r}: {error}") from error


def _record(name: str, size_mib: int, batch_kib: int, build: native.Build) -> dict:
    point = harness_point(name, size_mib, batch_kib)
    record = runner.run(point, build)
    if record.get("status") != "ok":
        settings = " ".join(f"{key}={value}" for key, value in {"size_mib": size_mib, **POINTS[name]}.items())
        reason = record.get("reason") or "no reason given"
        raise CalibrationError(f"harness point {name!r} ({settings}) is {record.get('status')}: {reason}")
    return record


def harness(build: native.Build, size_mib: int, batch_kib: int) -> dict:
    """The harness's measurements of the work plain C does (the same keys)."""
    write = _record("write", size_mib, batch_kib, build)
    reuse = _record("reuse", size_mib, batch_kib, build)
    copy = _record("copy", size_mib, batch_kib, build)
    return {
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


def measure(
    build: native.Build,
    sizes_mib=(256, 1024),
    repetitions: int = 5,
    batch_kib: int = 2048,
    sides=SIDES,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """One row per (size, side, repetition): the measurements and the quantities.

    The sides alternate (plain C, harness, plain C, ...), so a drift of the
    machine during the calibration hits both."""
    sides = tuple(sides)
    unknown = set(sides) - set(SIDES)
    if unknown:
        raise ValueError(f"sides: {sorted(unknown)}; known: {', '.join(SIDES)}")
    rows = []
    for size_mib in sizes_mib:
        for repetition in range(repetitions):
            for side in sides:
                if progress:
                    progress(f"{side} size_mib={size_mib} repetition {repetition + 1}/{repetitions}")
                if side == "plain_c":
                    values = c_program(build.directory, size_mib, batch_kib)
                elif side == "plain_c_threads":
                    values = c_program(build.directory, size_mib, batch_kib, PARKED_THREADS)
                else:
                    values = harness(build, size_mib, batch_kib)
                values = {key: values[key] for key in KEYS}
                rows.append(
                    {
                        "size_mib": size_mib,
                        "batch_kib": batch_kib,
                        "side": side,
                        "repetition": repetition,
                        **values,
                        **derive(values, size_mib),
                    }
                )
    return pd.DataFrame(rows)


def table(df: pd.DataFrame) -> pd.DataFrame:
    """Medians per size and quantity, plain C (alone and with parked threads)
    beside the harness, and the harness over each."""
    long = df.melt(id_vars=["size_mib", "side"], value_vars=list(QUANTITIES), var_name="quantity")
    medians = long.groupby(["size_mib", "quantity", "side"])["value"].median().unstack("side")
    medians = medians.reindex(columns=list(SIDES))  # a side not measured is NaN, not missing
    medians["ratio"] = medians["harness"] / medians["plain_c"]
    medians["ratio_threads"] = medians["harness"] / medians["plain_c_threads"]
    out = medians.reset_index()
    out.columns.name = None
    order = {quantity: i for i, quantity in enumerate(QUANTITIES)}
    out = out.sort_values(["size_mib", "quantity"], key=lambda c: c.map(order) if c.name == "quantity" else c)
    return out[["size_mib", "quantity", *SIDES, "ratio", "ratio_threads"]].reset_index(drop=True)


def _number(value: float) -> str:
    """Three significant digits or more, never an exponent."""
    if pd.isna(value):
        return "n/a"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) >= 1 else f"{value:.3f}"


def format_table(summary: pd.DataFrame) -> str:
    """The table as markdown, one row per size and quantity."""
    lines = [
        f"| size (MiB) | quantity | plain C | plain C, {PARKED_THREADS} threads parked | harness "
        "| harness / plain C | harness / plain C with threads |",
        "|---:|:---|---:|---:|---:|---:|---:|",
    ]
    for row in summary.itertuples(index=False):
        label = QUANTITIES.get(row.quantity, row.quantity)
        numbers = " | ".join(_number(getattr(row, side)) for side in SIDES)
        ratios = " | ".join("n/a" if pd.isna(r) else f"{r:.2f}" for r in (row.ratio, row.ratio_threads))
        lines.append(f"| {row.size_mib} | {label} | {numbers} | {ratios} |")
    return "\n".join(lines) + "\n"


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes are positive MiB, comma-separated (256,1024)")
    return sizes


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a positive integer")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cowsnap calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=[256, 1024], help="array sizes in MiB (default 256,1024)")
    parser.add_argument("--repetitions", type=_positive, default=5, help="runs per size and side (default 5)")
    parser.add_argument("--batch-kib", type=_positive, default=2048, help="the child's copy batch (default 2048)")
    parser.add_argument("--build-dir", type=Path, default=Path("results/build"), help="native build cache")
    parser.add_argument("--cxxflags", default=config.schema()["properties"]["cxxflags"]["default"])
    parser.add_argument(
        "--out", type=config.output_path("--out"), help="also write calibration.csv and calibration.md here"
    )
    args = parser.parse_args(argv)
    try:
        build = native.ensure_built(args.build_dir, args.cxxflags)
        df = measure(
            build,
            args.sizes,
            args.repetitions,
            args.batch_kib,
            progress=lambda text: print(f"cowsnap calibrate: {text}", file=sys.stderr),
        )
    except (native.BuildError, CalibrationError) as error:
        print(f"cowsnap calibrate: {error}", file=sys.stderr)
        return 1
    text = (
        f"Medians of {args.repetitions} runs; one writer, one copier, 4 KiB pages, "
        f"batch {args.batch_kib} KiB.\n\n{format_table(table(df))}"
    )
    print(text, end="")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out / "calibration.csv", index=False)
        (args.out / "calibration.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
