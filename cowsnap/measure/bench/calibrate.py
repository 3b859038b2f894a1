"""A calibration you can read: the harness against plain C on this machine.

    cowsnap calibrate [--sizes 256,1024] [--repetitions 5] [--batch-kib 2048]
                      [--cold] [--build-dir results/build]
                      [--cxxflags ...] [--out DIR]

Runs the same work twice, through the harness (cowsnap.measure.bench.runner: cppyy's
library starts the C++ benchmark, cowsnap-bench) and as `cowsnap-calibrate`, a small
plain C program (native/calibrate/calibrate.c) compiled in the same build: one writer
writes every element of an array of 4 KiB pages once, with no snapshot
(write), after a forked child copied the array and exited (reuse), and while
a forked child holds its copy (copy). Plain C runs twice: alone, and with
threads parked beside its writer as the harness's process has. It prints,
for each array size, the medians of fork ms/GiB, empty fork ms, reuse-fault
and copy-fault ns/page on each side and the harness over each plain C: the
harness's distance from plain C on this machine, and how much of it being
multi-threaded explains.

Both sides start each run from the same machine state: the memory the run
allocates (the array, the child's copy, the writer's COW copies) touched
and freed first, so a host that backs freed memory lazily backs it again
(--cold: the machine as it is). Each run also records what a fresh page
cost just before its copy phase's fork
(fresh_page_us) and the memory the machine reported to its host meanwhile
(host_reported_kib), and every gap over 10% is explained by what was
measured: plain C's own two sides, plain C's own runs, or the machine's
measures that differed between the sides, or else said to be unexplained.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
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
# A gap over this share between the harness and plain C gets an explanation.
GAP = 0.10
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

    The sides alternate (plain C, harness, plain C, ...), so a drift of the
    machine during the calibration hits both; with warm, each run first
    brings back what it allocates (warm_mib_of), on both sides alike."""
    sides = tuple(sides)
    unknown = set(sides) - set(SIDES)
    if unknown:
        raise ValueError(f"sides: {sorted(unknown)}; known: {', '.join(SIDES)}")
    rows = []
    for size_mib in sizes_mib:
        warm_mib = warm_mib_of(size_mib, batch_kib) if warm else 0
        for repetition in range(repetitions):
            for side in sides:
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
    out["explanation"] = [explanation(df, row) for _, row in out.iterrows()]
    return out[["size_mib", "quantity", *SIDES, "ratio", "ratio_threads", "explanation"]].reset_index(drop=True)


def explanation(df: pd.DataFrame, row: pd.Series) -> str:
    """Why the harness is more than GAP from plain C for one size and
    quantity, from what was measured ('' within GAP): plain C's own two
    sides, plain C's own runs, or a machine measure that differed between
    the harness's runs and plain C's; else 'unexplained', with what was seen."""
    gap = row["ratio"] - 1
    if pd.isna(gap) or abs(gap) <= GAP:
        return ""
    sides = row["plain_c_threads"] / row["plain_c"] - 1
    if abs(sides) >= abs(gap):
        return f"within plain C's own two sides, which differ by {100 * sides:+.0f}%"
    runs = df[df["size_mib"] == row["size_mib"]]
    plain = runs[runs["side"] == "plain_c"][row["quantity"]]
    if plain.min() <= row["harness"] <= plain.max():
        return f"within plain C's own runs ({_number(plain.min())}-{_number(plain.max())})"
    seen = []
    for key, unit, form in (
        ("fresh_page_us", "µs a fresh page", "{:.2f}"),
        ("host_reported_kib", "KiB reported to the host", "{:,.0f}"),
    ):
        mine = runs[runs["side"] == "harness"][key].median() if key in runs else float("nan")
        theirs = runs[runs["side"] == "plain_c"][key].median() if key in runs else float("nan")
        if pd.isna(mine) or pd.isna(theirs):
            continue
        words = f"{form.format(mine)} {unit} in the harness's runs, {form.format(theirs)} in plain C's"
        if _more(mine, theirs, key, row["size_mib"]) if gap > 0 else _more(theirs, mine, key, row["size_mib"]):
            return f"the machine: {words}"
        seen.append(words)
    return "unexplained" + (f": the machine measured no such difference ({'; '.join(seen)})" if seen else "")


def _more(a: float, b: float, key: str, size_mib: int) -> bool:
    """A machine measure larger in a than in b by more than GAP (of b for
    the probe, of the array for reported memory)."""
    return a > b * (1 + GAP) if key == "fresh_page_us" else a - b > GAP * size_mib * 1024


def _number(value: float) -> str:
    """Three significant digits or more, never an exponent."""
    if pd.isna(value):
        return "n/a"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) >= 1 else f"{value:.3f}"


def format_table(summary: pd.DataFrame) -> str:
    """The table as markdown, one row per size and quantity."""
    lines = [
        f"| size (MiB) | quantity | plain C | plain C, {PARKED_THREADS} threads parked | harness "
        f"| harness / plain C | harness / plain C with threads | a gap over {100 * GAP:g}%, explained |",
        "|---:|:---|---:|---:|---:|---:|---:|:---|",
    ]
    for row in summary.itertuples(index=False):
        label = QUANTITIES.get(row.quantity, row.quantity)
        numbers = " | ".join(_number(getattr(row, side)) for side in SIDES)
        ratios = " | ".join("n/a" if pd.isna(r) else f"{r:.2f}" for r in (row.ratio, row.ratio_threads))
        lines.append(f"| {row.size_mib} | {label} | {numbers} | {ratios} | {row.explanation} |")
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
    parser.add_argument("--cold", action="store_true", help="no warming before each run (the machine as it is)")
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
            warm=not args.cold,
        )
    except (native.BuildError, CalibrationError) as error:
        print(f"cowsnap calibrate: {error}", file=sys.stderr)
        return 1
    state = "cold (the machine as it is)" if args.cold else "each run first touching and freeing what it allocates"
    text = (
        f"Medians of {args.repetitions} runs; one writer, one copier, 4 KiB pages, "
        f"batch {args.batch_kib} KiB; {state}.\n\n{format_table(table(df))}"
    )
    print(text, end="")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out / "calibration.csv", index=False)
        (args.out / "calibration.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
