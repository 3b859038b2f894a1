"""The seed point's child copy with the seed's allocation against mmap, and the seed itself.

    python tests/bench_seed_alloc.py [RUNS]

Runs the seed point (256 MiB, 1 writer, 1 copier, dest=zeroed,
release=munmap, exit=normal, hold=copy) with alloc=new and alloc=mmap, the
same point with alloc=mmap and release=none, and the seed's own program
(tests/data/seed.cpp, built here with g++), interleaved, RUNS times each
(default 7). Prints the median of the child's copy time (child_copy_s) and
of its CPU time per side, and the load average seen. Exits with status 1
when the alloc=new median is more than 10% above the alloc=mmap median.

alloc=new keeps the seed's allocation, so its munmap of a batch fails
(EINVAL) and no page is freed while the child copies: every copy-on-write
copy, the child's and the writer's, goes to a page taken from the free
lists. With alloc=mmap the munmap frees each batch the writer has already
copied, and the next copies reuse those pages, still in the cache. Where
memory bandwidth is contended, copies into pages from the free lists slow
down and those into reused pages do not; the release=none side shows the
same allocation without the reuse.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SEED_SOURCE = Path(__file__).resolve().parent / "data" / "seed.cpp"
POINT = {
    "size_mib": "256",
    "method": "fork",
    "writers": "1",
    "copiers": "1",
    "dest": "zeroed",
    "release": "munmap",
    "exit": "normal",
    "hold": "copy",
    "pattern": "interleaved",
}
SIDES = {
    "alloc=new": {"alloc": "new"},
    "alloc=mmap": {"alloc": "mmap"},
    "alloc=mmap release=none": {"alloc": "mmap", "release": "none"},
    "seed program": None,
}
LIMIT = 1.10  # alloc=new's median over alloc=mmap's


def build_seed(folder: Path) -> Path:
    program = folder / "seed"
    command = ["g++", "-O2", "-std=c++17", "-pthread", "-DWITH_FORK", str(SEED_SOURCE), "-o", str(program)]
    subprocess.run(command, check=True)
    return program


def run_seed(program: Path) -> dict[str, float]:
    """The seed's lines that end in a number, by the text before it: child_copy_s,
    child_utime_s, child_stime_s, child_minflt, "duration (s):" (its workers' time)
    and "reunited with child after (s):"."""
    done = subprocess.run([str(program)], capture_output=True, text=True, check=True)
    values = {}
    for line in done.stdout.splitlines():
        key, _, value = line.rpartition(" ")
        try:
            values[key] = float(value)
        except ValueError:  # a line of words only
            continue
    return values


def run_point(settings: dict[str, str]) -> dict:
    point = {**POINT, **settings}
    command = [sys.executable, "-m", "cowsnap.cli", "run", *(f"{k}={v}" for k, v in point.items())]
    done = subprocess.run(command, capture_output=True, text=True)
    record = json.loads(done.stdout)
    if record.get("status") != "ok":
        raise SystemExit(f"{' '.join(command[3:])}: {record.get('status')}: {record.get('reason')}")
    return record


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    if shutil.which("g++") is None:
        raise SystemExit("g++ is needed to build tests/data/seed.cpp")
    copy: dict[str, list[float]] = {side: [] for side in SIDES}
    cpu: dict[str, list[float]] = {side: [] for side in SIDES}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as folder:
        seed = build_seed(Path(folder))
        for _ in range(runs):
            for side, settings in SIDES.items():
                values = run_seed(seed) if settings is None else run_point(settings)
                copy[side].append(values["child_copy_s"])
                cpu[side].append(values["child_utime_s"] + values["child_stime_s"])
                loads.append(os.getloadavg()[0])
    print(f"seed point, 256 MiB, 1 writer, 1 copier; {runs} interleaved runs per side")
    print(f"load average (1 min) during the runs: {min(loads):.2f} to {max(loads):.2f}")
    for side in SIDES:
        runs_text = ", ".join(f"{v:.3f}" for v in copy[side])
        print(
            f"  {side:>24}: child_copy_s median {statistics.median(copy[side]):.3f} s, "
            f"child CPU median {statistics.median(cpu[side]):.3f} s  (copy: {runs_text})"
        )
    ratio = statistics.median(copy["alloc=new"]) / statistics.median(copy["alloc=mmap"])
    verdict = "within" if ratio <= LIMIT else "MORE than"
    print(f"alloc=new / alloc=mmap: {ratio:.3f} ({verdict} {LIMIT:.2f})")
    return 0 if ratio <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
