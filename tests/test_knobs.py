"""System knobs a run changes come back to their exact previous value:
after a normal run, and after a run killed with SIGKILL (the next run's
start restores them from the journal)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cowsnap.measure import environment, knobs
from cowsnap.measure.bench import runner
from cowsnap.plan import grid

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing system knobs needs root")
THP = knobs.THP_ENABLED


def other_thp_mode() -> str:
    return "always" if knobs.current(THP) != "always" else "madvise"


@needs_root
def test_thp_mode_applies_for_the_run_and_is_restored(build):
    before = THP.read_text()
    mode = other_thp_mode()
    record = runner.run(grid.resolve({"method": "none", "size_mib": 8, "thp_mode": mode}), build)
    assert record["status"] == "ok", record["reason"]
    assert record["thp_enabled"] == mode  # read back while the run had it
    assert THP.read_text() == before
    assert not knobs.JOURNAL.exists()


@needs_root
def test_delay_accounting_is_enabled_for_the_run_and_restored(build):
    before = knobs.TASK_DELAYACCT.read_text()
    record = runner.run(grid.resolve({"method": "fork", "size_mib": 8, "batch_kib": 512}), build)
    assert record["delayacct_effective"] is True
    assert "writer_wpcopy_count" in record
    assert knobs.TASK_DELAYACCT.read_text() == before


@needs_root
def test_knob_failure_skips_the_point_and_restores(build):
    # A pool far beyond this machine's memory cannot be reserved.
    before = environment.hugetlb_pool()
    point = grid.resolve({"backing": "hugetlb-1g", "size_mib": 1024, "batch_kib": 1048576, "hugetlb_pool": 10_000})
    record = runner.run(point, build)
    assert record["status"] == "skipped"
    assert "nr_hugepages" in record["reason"] or "MiB" in record["reason"]
    assert environment.hugetlb_pool() == before


def start_run_that_sets_thp(build, mode: str) -> subprocess.Popen:
    """A run (in its own process) with thp_mode=mode, returned once the knob is set."""
    command = [
        sys.executable, "-m", "cowsnap.cli", "run", f"--build-dir={build.directory.parent}",
        f"thp_mode={mode}", "size_mib=512", "method=fork", "hold=writers", "release=none", "memcpy_mib=0",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while knobs.current(THP) != mode:
        assert process.poll() is None and time.monotonic() < deadline, "the run never set the knob"
        time.sleep(0.005)
    return process


@needs_root
def test_knobs_survive_sigkill_and_the_next_run_restores_them(build):
    before = THP.read_text()
    mode = other_thp_mode()
    process = start_run_that_sets_thp(build, mode)
    try:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert knobs.current(THP) == mode  # nothing could restore it...
        assert knobs.JOURNAL.exists()  # ...but the journal remembers
        record = runner.run(grid.resolve({"method": "none", "size_mib": 4, "batch_kib": 64}), build)
        assert record["status"] == "ok"
        assert THP.read_text() == before
        assert not knobs.JOURNAL.exists()
    finally:
        process.kill()
        knobs.restore_journal()


@needs_root
def test_sigterm_restores_the_knobs(build):
    """SIGTERM ends a run through Python's cleanup, which restores its knobs."""
    before = THP.read_text()
    process = start_run_that_sets_thp(build, other_thp_mode())
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert THP.read_text() == before
    assert not knobs.JOURNAL.exists()


def unprivileged_python():
    """A command prefix running this Python as nobody, or skip."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or not setpriv:
        pytest.skip("needs root and setpriv to run a point as an ordinary user")
    prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--", sys.executable]
    probe = subprocess.run(
        [*prefix, "-c", "import cowsnap.measure.native, cppyy"], capture_output=True, text=True, cwd="/"
    )
    if probe.returncode != 0:
        pytest.skip(f"this checkout is not readable by an ordinary user: {probe.stderr.strip()[-200:]}")
    return prefix


def test_ordinary_user_skips_thp_mode_points_with_the_reason(build, tmp_path_factory):
    prefix = unprivileged_python()
    # A copy of the build an ordinary user can read.
    shared = Path(tempfile.mkdtemp(prefix="cowsnap-build-"))
    try:
        shutil.copytree(build.directory, shared / build.directory.name)
        for path in [shared, *shared.rglob("*")]:
            path.chmod(0o755)
        before = THP.read_text()
        done = subprocess.run(
            [*prefix, "-m", "cowsnap.cli", "run", f"--build-dir={shared}",
             f"thp_mode={other_thp_mode()}", "size_mib=8", "memcpy_mib=0"],
            capture_output=True, text=True, cwd="/", env={**os.environ, "HOME": str(shared)},
        )  # fmt: skip
    finally:
        shutil.rmtree(shared)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "skipped"
    assert "needs root" in record["reason"] and "transparent_hugepage/enabled" in record["reason"]
    assert record["uid"] == 65534
    assert THP.read_text() == before
