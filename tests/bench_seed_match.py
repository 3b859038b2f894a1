"""The seed's point against the seed's own program, paired round by round, each run from the same warm state.

    python tests/bench_seed_match.py [RUNS]

Runs the seed's own program (tests/data/seed.cpp: 1 worker, 1 checkpointer,
256 MiB, built here with g++) and cowsnap's seed point with 1 writer and 1
copier (`seed` experiment, alloc=new, exit=normal) in RUNS rounds (default
7): round k runs each side once, the seed first in even rounds and cowsnap
first in odd ones. Before every run on either side, this script touches and
frees what the run allocates (the point's memory_needed_mib), so a host that
backs freed memory lazily has backed it again, alike for both. Per quantity
(the writers' time and the reunion with the child, both from the fork's
return: the harness's writers_s and snapshot_end_s less the fork call,
snapshot_pause_s; and the child's copy, shown) it prints each side's median
and cowsnap / seed paired: the median of the per-round ratios with its
distribution-free interval and the interval's level (5 rounds: [min, max] at
93.75%), and the verdict (cowsnap.analyse.calibration): a bias where the
interval lies clear of 1, else noise, with the ratios these runs could have
resolved. Exits with status 1 when a paired interval lies entirely outside
its band, a bias beyond the limit: 1 ± 10% for the writers, 1 ± 15% for
the reunion; 0 otherwise. Its last line says which.
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

from cowsnap.analyse.calibration import paired
from cowsnap.measure.bench.calibrate import round_order
from cowsnap.plan import config
from cowsnap.plan import point as plan_point

POINT = {"size_mib": 256, "method": "fork", "writers": 1, "copiers": 1, "batch_kib": 2048, "alloc": "new",
         "exit": "normal", "pattern": "interleaved", "dest": "zeroed", "release": "munmap", "hold": "copy",
         "check_copy": False}  # fmt: skip
LIMITS = {"writers_s": 0.10, "reunion_s": 0.15}  # cowsnap / seed's band: 1 ± this
SHOWN = (*LIMITS, "child_copy_s")  # and where the reunion's time goes: the child's copy
SIDES = ("seed", "cowsnap")


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


def judge(measured: dict[str, dict[str, list[float]]]) -> tuple[list[str], int]:
    """The lines to print and the exit status, from each side's values per
    key in round order: 1 when a paired interval lies entirely outside its
    band (a bias beyond the limit), else 0."""
    lines, beyond = [], []
    for key in SHOWN:
        seed, cowsnap = measured["seed"][key], measured["cowsnap"][key]
        ratio = paired(cowsnap, seed)
        spans = "; ".join(f"{side} {min(v[key]):.3f}-{max(v[key]):.3f}" for side, v in measured.items())
        lines.append(f"  {key}: seed {statistics.median(seed):.3f} s, cowsnap {statistics.median(cowsnap):.3f} s "
                     f"(medians; ranges: {spans})")  # fmt: skip
        limit = LIMITS.get(key)
        if limit is None:
            judged = "shown"
        elif ratio.beyond(limit):
            judged = f"a bias beyond the ±{100 * limit:g}% limit"
            beyond.append(f"{key}: {judged}")
        else:
            judged = f"not beyond the ±{100 * limit:g}% limit (the interval reaches {1 - limit:.2f}-{1 + limit:.2f})"
        level = f"{100 * ratio.level:.4g}%"
        lines.append(f"    {key}, cowsnap / seed paired: {ratio.median:.3f} ({ratio.interval(3)} at {level}): "
                     f"{ratio.verdict(3)}; {judged}")  # fmt: skip
    if beyond:
        lines.append(f"status 1: {'; '.join(beyond)}")
        return lines, 1
    bands = ", ".join(f"{key} ±{100 * limit:g}%" for key, limit in LIMITS.items())
    lines.append(f"status 0: no paired interval lies entirely outside its band ({bands})")
    return lines, 0


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    if shutil.which("g++") is None:
        raise SystemExit("g++ is needed to build tests/data/seed.cpp")
    warm_mib = plan_point.memory_needed_mib(config.validate_point(POINT))
    measured: dict[str, dict[str, list[float]]] = {side: {key: [] for key in SHOWN} for side in SIDES}
    with tempfile.TemporaryDirectory() as folder:
        program = build_seed(Path(folder))
        for k in range(runs):
            for side in round_order(SIDES, k):  # each side first in every other round
                warm(warm_mib)
                values = seed_side(program) if side == "seed" else run_point()
                for key in SHOWN:
                    measured[side][key].append(values[key])
    print(f"the seed point, 256 MiB, 1 writer, 1 copier; {runs} rounds, each one run of each side in alternating "
          f"order, every run after touching and freeing {warm_mib} MiB")  # fmt: skip
    lines, status = judge(measured)
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
