"""What `cowsnap watch` costs the program it watches.

    python tests/bench_watch_overhead.py [--repetitions 5] [--size-mib 256] [--intervals 1,0.1]

Runs the build's plain C program cowsnap-calibrate (fills an array, forks a
child that copies it, writes it while the child lives and after it exited)
alone and under `cowsnap watch --interval I`, alternating, and compares the
program's own time (the sum of the phases it times itself: fork and the
three write phases). Prints the medians and their ratio per interval.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from cowsnap.measure import native
from cowsnap.plan import config

PHASES = ("fork_s", "write_s", "write_after_exit_s", "write_during_copy_s")


def program_time(stdout: str) -> float:
    """The calibrate program's own time, from its JSON line."""
    line = next(line for line in stdout.splitlines() if line.startswith('{"fork_empty_s"'))
    values = json.loads(line)
    return sum(values[key] for key in PHASES)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--intervals", default="1,0.1", help="watch intervals to measure, in seconds")
    parser.add_argument("--build-dir", type=Path, default=Path("results/build"))
    args = parser.parse_args()
    build = native.ensure_built(args.build_dir, config.schema()["properties"]["cxxflags"]["default"])
    program = [str(build.calibrate), str(args.size_mib), "2048"]
    intervals = [float(x) for x in args.intervals.split(",")]
    times: dict[str, list[float]] = {"alone": [], **{f"watch --interval {i:g}": [] for i in intervals}}
    for _ in range(args.repetitions):
        times["alone"].append(program_time(subprocess.run(program, capture_output=True, text=True).stdout))
        for interval in intervals:
            watched = [sys.executable, "-m", "cowsnap.cli", "watch", "--build-dir", str(args.build_dir)]
            watched += ["--interval", str(interval), "--", *program]
            done = subprocess.run(watched, capture_output=True, text=True)
            times[f"watch --interval {interval:g}"].append(program_time(done.stdout))
    alone = statistics.median(times["alone"])
    print(f"cowsnap-calibrate {args.size_mib} MiB, {args.repetitions} runs each, median of its own time:")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"  {name:>22}: {median:.3f} s  ({median / alone:.3f}x alone; runs {', '.join(f'{v:.3f}' for v in values)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
