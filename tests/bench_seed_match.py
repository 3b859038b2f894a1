"""The seed's point against the seed's own program, each run from the same warm state.

    python tests/bench_seed_match.py [RUNS]

Runs the seed's own program (tests/data/seed.cpp: 1 worker, 1 checkpointer,
256 MiB, built here with g++) and cowsnap's seed point with 1 writer and 1
copier (`seed` experiment, alloc=new, exit=normal), interleaved, RUNS times
each (default 7). Before every run on either side, this script touches and
frees what the run allocates (the point's memory_needed_mib), so a host that
backs freed memory lazily has backed it again, alike for both. Prints each
side's medians of the writers' time and of the reunion with the child (both
from the fork's return: the harness's writers_s and snapshot_end_s less the
fork call, snapshot_pause_s), and cowsnap over the seed. Exits with status 1
when the writers differ by more than 10% or the reunion by more than 15%.
"""

from __future__ import annotations

import json
import mmap
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_seed_alloc import build_seed, run_seed

from cowsnap.plan import config
from cowsnap.plan import point as plan_point

POINT = {"size_mib": 256, "method": "fork", "writers": 1, "copiers": 1, "batch_kib": 2048, "alloc": "new",
         "exit": "normal", "pattern": "interleaved", "dest": "zeroed", "release": "munmap", "hold": "copy",
         "check_copy": False}  # fmt: skip
LIMITS = {"writers_s": 1.10, "reunion_s": 1.15}
SHOWN = (*LIMITS, "child_copy_s")  # and where the reunion's time goes: the child's copy


def warm(mib: int) -> None:
    """Touch and free mib MiB of fresh anonymous memory."""
    region = mmap.mmap(-1, mib * 2**20)
    populate = getattr(mmap, "MADV_POPULATE_WRITE", None)
    try:
        region.madvise(populate)
    except (TypeError, OSError):  # no MADV_POPULATE_WRITE here: a write per page
        for offset in range(0, len(region), mmap.PAGESIZE):
            region[offset] = 1
    region.close()


def seed_side(program: Path) -> dict[str, float]:
    values = run_seed(program)
    return {
        "writers_s": values["duration (s):"],
        "reunion_s": values["reunited with child after (s):"],
        "child_copy_s": values["child_copy_s"],
    }


def run_point() -> dict[str, float]:
    command = [sys.executable, "-m", "cowsnap.cli", "run", *(f"{k}={v}" for k, v in POINT.items())]
    record = json.loads(subprocess.run(command, capture_output=True, text=True).stdout)
    if record.get("status") != "ok":
        raise SystemExit(f"the seed point: {record.get('status')}: {record.get('reason')}")
    pause = record["snapshot_pause_s"]
    return {
        "writers_s": record["writers_s"] - pause,
        "reunion_s": record["snapshot_end_s"] - pause,
        "child_copy_s": record["child_copy_s"],
    }


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    if shutil.which("g++") is None:
        raise SystemExit("g++ is needed to build tests/data/seed.cpp")
    warm_mib = plan_point.memory_needed_mib(config.validate_point(POINT))
    measured: dict[str, dict[str, list[float]]] = {side: {key: [] for key in SHOWN} for side in ("seed", "cowsnap")}
    with tempfile.TemporaryDirectory() as folder:
        program = build_seed(Path(folder))
        for _ in range(runs):
            for side in measured:
                warm(warm_mib)
                values = seed_side(program) if side == "seed" else run_point()
                for key in SHOWN:
                    measured[side][key].append(values[key])
    print(f"the seed point, 256 MiB, 1 writer, 1 copier; {runs} interleaved runs a side, each after "
          f"touching and freeing {warm_mib} MiB")  # fmt: skip
    within = True
    for key in SHOWN:
        medians = {side: statistics.median(measured[side][key]) for side in measured}
        ratio = medians["cowsnap"] / medians["seed"]
        limit = LIMITS.get(key)
        within &= limit is None or abs(ratio - 1) <= limit - 1
        spans = "; ".join(f"{side} {min(v[key]):.3f}-{max(v[key]):.3f}" for side, v in measured.items())
        print(f"  {key}: seed {medians['seed']:.3f} s, cowsnap {medians['cowsnap']:.3f} s, cowsnap / seed "
              f"{ratio:.3f} ({f'limit {limit:.2f}' if limit else 'shown'}; ranges: {spans})")  # fmt: skip
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
