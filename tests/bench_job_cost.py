"""The fixed cost of one timed job through the real workflow.

    python tests/bench_job_cost.py [N]

Runs a sweep of one trivial point (1 MiB, no snapshot) with 1 repetition and
again with N + 1 repetitions, in a temporary folder, with the native build
made once beforehand. The fixed cost per job is the extra wall time per
extra run, less what the runs measured (their phases): process start,
imports, loading the build, reading the machine, writing the record, and
Snakemake's own bookkeeping.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PHASES = ("fill_s", "fork_empty_s", "fork_s", "writers_s", "populate_s", "child_reaped_s", "pause_s")
CONFIG = """
experiments:
  cost:
    repetitions: {repetitions}
    base: {{method: none, size_mib: 1, batch_kib: 64, memcpy_mib: 0, writers: 1, delayacct: false}}
"""


def sweep(folder: Path, repetitions: int) -> float:
    """Wall time of one sweep of the trivial point, its records removed first."""
    (folder / "config").mkdir(exist_ok=True)
    (folder / "config" / "config.yaml").write_text(CONFIG.format(repetitions=repetitions))
    for stale in ("cost", "figures", "summary.md"):
        path = folder / "results" / stale
        if path.is_dir():
            shutil.rmtree(path)
        path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2", "--quiet"]
    started = time.monotonic()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(done.stdout + done.stderr)
    return elapsed


def measured_s(folder: Path) -> float:
    """What the runs measured, summed over their records."""
    total = 0.0
    for path in (folder / "results" / "cost").glob("p*/*.json"):
        record = json.loads(path.read_text())
        total += sum(record.get(phase) or 0.0 for phase in PHASES if record.get(phase, 0) > 0)
    return total


def main() -> None:
    extra = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    with tempfile.TemporaryDirectory(prefix="cowsnap-bench-") as tmp:
        folder = Path(tmp)
        sweep(folder, 1)  # builds native/ once; not counted
        one = sweep(folder, 1)
        one_measured = measured_s(folder)
        many = sweep(folder, extra + 1)
        many_measured = measured_s(folder)
    per_job = ((many - many_measured) - (one - one_measured)) / extra
    print(f"sweep of 1 run: {one:.2f} s; of {extra + 1} runs: {many:.2f} s")
    print(f"fixed cost per job: {per_job:.3f} s (wall time less measured phases, per extra run)")


if __name__ == "__main__":
    main()
