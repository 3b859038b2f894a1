"""The levers for a pool of forked workers whose reads write, with their
measured copies: each lever is a program of examples/, run as a watch
point of the `pool` experiment, and the watch advises a lever only with
that experiment's numbers (TABLE, written from a sweep's records by
`python -m cowsnap.analyse.watch.levers RESULTS`)."""

from __future__ import annotations

import csv
import json
import re
import statistics
import sys
from pathlib import Path

from cowsnap.analyse import verdict

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


def example_of(command) -> str:
    """The examples/ program a watch point's command runs ('' for none)."""
    text = " ".join(command) if isinstance(command, list) else str(command)
    return next((name for name in re.findall(r"(\w+)\.py\b", text) if name in EXAMPLES), "")


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


def main(argv: list[str]) -> int:
    """python -m cowsnap.analyse.watch.levers RESULTS: the pool experiment's
    records in RESULTS/pool/ -> TABLE."""
    if len(argv) != 1:
        print("usage: python -m cowsnap.analyse.watch.levers RESULTS", file=sys.stderr)
        return 2
    paths = sorted((Path(argv[0]) / EXPERIMENT).glob("p*/*.json"))
    rows = from_records([json.loads(path.read_text()) for path in paths])
    if not rows:
        print(f"no ok run of an examples/ program in {Path(argv[0]) / EXPERIMENT}", file=sys.stderr)
        return 1
    write(rows)
    print(f"{TABLE}: {len(rows)} examples from {len(paths)} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
