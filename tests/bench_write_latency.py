"""What recording write latency costs the writers: writers_s with it off and on.

    python tests/bench_write_latency.py [RUNS] [SIZE_MIB]

Runs the default point (method none, the baseline; and method fork, the
seed's snapshot) at SIZE_MIB (default 256) with write_latency_kib=0 (off)
and at its default (on), in rounds: each round runs every side once, in
alternating order, so drift and the load of the moment fall on both sides
alike. RUNS rounds (default 31). Prints each side's median writers_s, the
median of the round-by-round ratios on/off per method with its
distribution-free interval (cowsnap.analyse.stats), and the load average
seen. Exits with status 1 when a method's median ratio is above
1.03 (recording may cost at most 3% of writers_s).

The writers' threads are the default's (auto: half the CPUs). The ratio of
a round is one run against one run, and a fork run's writers' time varies
by several percent from run to run, so the median needs many rounds; it is
what the limit applies to.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

from cowsnap.analyse import stats
from cowsnap.measure import native
from cowsnap.measure.bench import runner
from cowsnap.plan import config, grid

LIMIT = 1.03  # latency on / off, median of the rounds' ratios
METHODS = ("none", "fork")
BUILD_DIR = Path(__file__).resolve().parents[1] / "results" / "build"  # the sweep's build cache


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 31
    size_mib = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    defaults = config.point_defaults()
    on_kib = defaults["write_latency_kib"]
    build = native.ensure_built(BUILD_DIR, config.schema()["properties"]["cxxflags"]["default"])
    sides = [(method, kib) for method in METHODS for kib in (0, on_kib)]
    times: dict[tuple, list[float]] = {side: [] for side in sides}
    loads = [os.getloadavg()[0]]
    for round_number in range(rounds):
        order = sides if round_number % 2 == 0 else sides[::-1]
        for method, kib in order:
            point = grid.resolve({"size_mib": size_mib, "method": method, "write_latency_kib": kib})
            record = runner.run(point, build)
            if record["status"] != "ok":
                raise SystemExit(f"method={method} write_latency_kib={kib}: {record['status']}: {record['reason']}")
            times[(method, kib)].append(record["writers_s"])
            loads.append(os.getloadavg()[0])
    print(f"{size_mib} MiB, default point, {rounds} rounds; write_latency_kib 0 (off) and {on_kib} (on)")
    print(f"load average (1 min) during the runs: {min(loads):.2f} to {max(loads):.2f}")
    worst = 0.0
    for method in METHODS:
        off, on = times[(method, 0)], times[(method, on_kib)]
        ratio, low, high, level = stats.median_interval([b / a for a, b in zip(off, on, strict=True)])
        worst = max(worst, ratio)
        print(
            f"  method={method}: writers_s median off {statistics.median(off):.4f} s, "
            f"on {statistics.median(on):.4f} s; on/off {ratio:.3f} ({low:.3f}-{high:.3f}, {level:.1%}; "
            f"median of {rounds} paired rounds)"
        )
    verdict = "within" if worst <= LIMIT else "MORE than"
    print(f"recording write latency costs {100 * (worst - 1):+.1f}% of writers_s at worst ({verdict} {LIMIT - 1:.0%})")
    return 0 if worst <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
