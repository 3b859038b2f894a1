"""A tiny sweep submitted to a real SLURM cluster with profiles/slurm.

Skipped unless a cluster answers with an idle node in the partition `debug`;
`.ci/slurm up` starts a one-node one on loopback (and `.ci/slurm down` stops it).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cowsnap.analyse.aggregate import FINGERPRINT

REPO = Path(__file__).resolve().parent.parent
PROFILE = REPO / "profiles" / "slurm"
PARTITION = "debug"

TINY = """
experiments:
  tiny:
    repetitions: 2
    base: {size_mib: 8, batch_kib: 512, memcpy_mib: 0}
    matrix:
      method: [none, fork]
"""


def slurm_command(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30)


def no_cluster(reason: str):
    """Skip, or fail where a cluster was promised (COWSNAP_REQUIRE_SLURM=1, as .ci/run sets)."""
    if os.environ.get("COWSNAP_REQUIRE_SLURM") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def node_cpus():
    """The CPUs of an idle node in PARTITION; skips when no cluster answers."""
    if shutil.which("sinfo") is None:
        no_cluster("no SLURM here: sinfo is not on PATH (`.ci/slurm up` starts a cluster)")
    try:
        done = slurm_command("sinfo", "--noheader", f"--partition={PARTITION}", "--states=idle", "--format=%c")
    except subprocess.TimeoutExpired:
        no_cluster("the SLURM cluster does not answer: sinfo timed out")
    if done.returncode != 0:
        no_cluster(f"the SLURM cluster does not answer: sinfo failed: {done.stderr.strip()}")
    if not done.stdout.split():
        no_cluster(f"no idle SLURM node in partition {PARTITION}")
    return int(done.stdout.split()[0].rstrip("+"))


def resource_args(option, values):
    """A profile's resource mapping as command-line values, as Snakemake reads them."""
    return [option, *(f"{name}={value}" for name, value in values.items())]


def test_tiny_sweep_runs_on_slurm(tmp_path, node_cpus):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(TINY)
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    # A resource option given on the command line replaces the profile's whole
    # mapping: pass the profile's own values with this cluster's partition,
    # no account (none without accounting) and its node's CPUs.
    defaults = {**profile["default-resources"], "slurm_partition": PARTITION, "slurm_account": "''"}
    run_point = {**profile["set-resources"]["run_point"], "cpus_per_task": node_cpus}
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--profile",
        str(PROFILE),
        "--executor",
        "slurm",
        *resource_args("--default-resources", defaults),
        *resource_args("--set-resources", {f"run_point:{name}": value for name, value in run_point.items()}),
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    table = pd.read_csv(tmp_path / "results" / "tiny" / "runs.csv")
    assert len(table) == 4, table
    assert set(table["status"]) == {"ok"}, table[["status", "reason"]]
    assert sorted(table["method"]) == ["fork", "fork", "none", "none"]
    for column in FINGERPRINT:
        assert column in table, column
        assert table[column].notna().all() and (table[column].astype(str).str.strip() != "").all(), column

    # Every timed run went through sbatch, alone on its node, and finished.
    job_ids = re.findall(r"submitted with SLURM jobid (\d+)", output)
    assert len(job_ids) == 4, output
    for job_id in job_ids:
        job = slurm_command("scontrol", "--oneliner", "show", "job", job_id)
        assert job.returncode == 0, job.stderr
        fields = dict(item.split("=", 1) for item in job.stdout.split() if "=" in item)
        assert fields["JobState"] == "COMPLETED", job.stdout
        assert fields["Partition"] == PARTITION, job.stdout
        assert fields["OverSubscribe"] == "NO", job.stdout  # --exclusive
        assert int(fields["NumCPUs"]) == node_cpus, job.stdout
    # Nothing of this run is left in the queue.
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    queue = slurm_command("squeue", "--noheader", f"--name={run_id}", "--format=%i %T")
    assert queue.returncode == 0, queue.stderr
    assert queue.stdout.strip() == "", queue.stdout
