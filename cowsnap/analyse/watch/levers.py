"""The levers for a pool of forked workers whose reads write, with their
measured copies: each lever is a program of examples/, run as a watch
point of the `pool` experiment, and the watch advises a lever only with
that experiment's numbers (TABLE, written from a sweep's records by
`python -m cowsnap.analyse.watch.levers RESULTS`; the sweep itself writes
RESULTS/pool/levers.csv, rule `levers`, and tests/test_pool.py holds TABLE
equal to the one its sweep's records, kept in
tests/data/results/pool-sweep/, give)."""

from __future__ import annotations

import csv
import json
import re
import shlex
import statistics
import sys
from pathlib import Path

from cowsnap.analyse import verdict
from cowsnap.plan import commands

TABLE = Path(__file__).with_name("levers.csv")
EXPERIMENT = "pool"
PROBLEM = "pool_objects"  # the workers read a list of objects: what the levers are measured against
# Example program -> the lever it shows, and what the lever does not do.
EXAMPLES = {
    PROBLEM: ("objects read by forked workers", ""),
    "pool_flat": ("data in flat buffers (array, bytes) instead of objects", ""),
    "pool_shared_memory": ("the data in shared memory (multiprocessing.shared_memory)", ""),
    "pool_gc_freeze": (
        "gc.freeze() before fork",
        "it keeps the collector from writing to the objects, not reading from writing their reference counts",
    ),
    "pool_forkserver": (
        "the forkserver start method",
        "the workers share nothing with the parent: each builds or receives its own data",
    ),
}
COLUMNS = ("example", "runs", "workers", "anon_pages", "worker_wpcopy_count", "worker_private_dirty_pages",
           "copied_share", "kernel", "measured_on")  # fmt: skip


def program_of(command) -> str:
    """What a command runs, by name ('' for nothing): a Python script's name
    without .py (the module of `python -m`), else the program's file name;
    through `sh -c '...'` and the words before a program
    (cowsnap.plan.commands.program_words: VAR=value, exec, env, nice ...). `sh -c 'exec
    python3 "$DIR"/pool_flat.py --items 9'` runs pool_flat."""
    try:
        words = list(map(str, command)) if isinstance(command, list) else shlex.split(str(command))
    except ValueError:
        return ""
    words = commands.program_words(words)  # as the dry run finds it: past VAR=value, exec, env and the like
    if not words:
        return ""
    name = Path(words[0]).name
    if name in commands.SHELLS and words[1:2] == ["-c"]:
        return program_of(words[2]) if len(words) > 2 else name
    if re.fullmatch(r"python[\d.]*", name):
        options = iter(words[1:])
        for word in options:
            if word == "-m":
                return next(options, name)
            if word == "-c":
                return name
            if word in ("-W", "-X"):  # an option with a value
                next(options, None)
            elif not word.startswith("-"):
                return Path(word).stem if word.endswith(".py") else Path(word).name
    return name


def example_of(command) -> str:
    """The examples/ program a watch point's command runs ('' for none)."""
    name = program_of(command)
    return name if name in EXAMPLES else ""


def from_records(records: list[dict]) -> list[dict]:
    """One row per example: medians over its ok runs."""
    runs: dict[str, list[dict]] = {}
    for record in records:
        example = example_of(record.get("watch_command", ""))
        if example and record.get("status") == "ok":
            runs.setdefault(example, []).append(record)
    rows = []
    for example in EXAMPLES:
        if example not in runs:
            continue
        done = runs[example]

        def median(key: str, done=done) -> float:
            values = [r.get(key, 0.0) for r in done]  # a role no child took: none of its copies
            return statistics.median(values)

        workers, anon, copies = median("worker_count"), median("anon_pages"), median("worker_wpcopy_count")
        rows.append(
            {
                "example": example,
                "runs": len(done),
                "workers": workers,
                "anon_pages": anon,
                "worker_wpcopy_count": copies,
                "worker_private_dirty_pages": median("worker_private_dirty_pages"),
                "copied_share": copies / (max(workers, 1) * anon) if anon else float("nan"),
                "kernel": " ".join(sorted({str(r.get("kernel")) for r in done})),
                "measured_on": min(str(r.get("started_at", ""))[:10] for r in done),
            }
        )
    return rows


def read(path: Path = TABLE) -> list[dict]:
    """The measured rows ([] when there are none)."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as file:
        return [
            {key: value if key in ("example", "kernel", "measured_on") else float(value) for key, value in row.items()}
            for row in csv.DictReader(file)
        ]


def write(rows: list[dict], path: Path = TABLE) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: f"{value:.6g}" if isinstance(value, float) else value for key, value in row.items()})


def lever_lines(rows: list[dict]) -> list[str]:
    """The levers, each with what it measured against the problem's copies;
    without measurements, what would measure them."""
    measured = {row["example"]: row for row in rows}
    if PROBLEM not in measured or len(measured) < 2:
        return [
            "no lever for these workers was measured here: the `pool` experiment measures each one "
            f"(examples/, {', '.join(EXAMPLES)}) and `python -m cowsnap.analyse.watch.levers RESULTS` keeps its "
            "numbers for the watch"
        ]
    problem = measured[PROBLEM]
    head = (
        f"measured by the pool experiment ({int(problem['workers'])} workers, "
        f"{verdict.mib(problem['anon_pages'])} of objects, median of {int(problem['runs'])} runs, kernel "
        f"{problem['kernel']}, {problem['measured_on']}): objects: the workers copied "
        f"{verdict.mib(problem['worker_wpcopy_count'])}, {problem['copied_share']:.0%} of what each shared, and "
        f"their private memory peaked at {verdict.mib(problem['worker_private_dirty_pages'])}"
    )
    lines = [head]
    for example, (words, caveat) in EXAMPLES.items():
        if example == PROBLEM or example not in measured:
            continue
        row = measured[example]
        line = (
            f"{words} (examples/{example}.py): the workers copied {verdict.mib(row['worker_wpcopy_count'])}, "
            f"{row['worker_wpcopy_count'] / problem['worker_wpcopy_count']:.0%} of what they copied of objects, and "
            f"their private memory peaked at {verdict.mib(row['worker_private_dirty_pages'])}"
        )
        lines.append(line + (f"; {caveat}" if caveat else ""))
    return lines


def from_paths(paths: list[Path]) -> list[dict]:
    """from_records of the records at these paths (a pool experiment's)."""
    return from_records([json.loads(Path(path).read_text()) for path in paths])


def main(argv: list[str]) -> int:
    """python -m cowsnap.analyse.watch.levers RESULTS [OUT]: the pool
    experiment's records in RESULTS/pool/ -> OUT (by default TABLE, the
    table the watch reads)."""
    if len(argv) not in (1, 2):
        print("usage: python -m cowsnap.analyse.watch.levers RESULTS [OUT]", file=sys.stderr)
        return 2
    paths = sorted((Path(argv[0]) / EXPERIMENT).glob("p*/*.json"))
    rows = from_paths(paths)
    if not rows:
        print(f"no ok run of an examples/ program in {Path(argv[0]) / EXPERIMENT}", file=sys.stderr)
        return 1
    out = Path(argv[1]) if len(argv) == 2 else TABLE
    write(rows, out)
    print(f"{out}: {len(rows)} examples from {len(paths)} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
