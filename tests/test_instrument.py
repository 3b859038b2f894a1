"""The instrument itself: a count it could not take is absent with the
reason, never 0; a setting that did not take effect skips the point; the
delay accounting a point asks for is the one it runs under."""

import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest

from cowsnap.analyse import aggregate
from cowsnap.measure import environment, knobs, native
from cowsnap.measure.bench import runner
from cowsnap.plan import grid

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing system knobs needs root")
SIZE = {"size_mib": 16, "batch_kib": 512, "pattern": "blocked", "memcpy_mib": 0}


def bench_as_nobody(build, tmp_path):
    """A wrapper that runs the build's benchmark as the user nobody (setpriv)."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    bench = tmp_path / native.BENCH
    shutil.copy(build.bench, bench)
    wrapper = tmp_path / "bench-as-nobody"
    wrapper.write_text(f"#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups {bench}\n")
    for path in (wrapper, bench, tmp_path):
        path.chmod(path.stat().st_mode | stat.S_IXOTH | stat.S_IROTH | stat.S_IXUSR)
    return wrapper


@needs_root
def test_copies_an_ordinary_user_cannot_count_are_absent_not_zero(build, tmp_path, monkeypatch):
    # Delay accounting on (a boot flag or an admin's choice), but the
    # taskstats query needs CAP_NET_ADMIN: the count cannot be read.
    wrapper = bench_as_nobody(build, tmp_path)
    monkeypatch.setattr(native.Build, "bench", property(lambda self: wrapper))
    point = grid.resolve({**SIZE, "method": "fork", "hold": "writers", "release": "none"})
    with knobs.applied({knobs.TASK_DELAYACCT: "1"}):
        record = runner.measure(point, build)
    assert record["status"] == "ok", record["reason"]
    assert record["delayacct_effective"] is True
    assert "writer_wpcopy_count" not in record and "child_wpcopy_count" not in record
    assert record["writer_wpcopy_source"].startswith("not counted: ")
    assert "CAP_NET_ADMIN" in record["writer_wpcopy_source"]
    table = aggregate.runs_table([{**point, **record, "run_id": "x", "experiment": "x", "point_id": "p"}])
    assert table["copies"].isna().all()
    assert table["copies_source"].iloc[0].startswith("not counted")


@needs_root
@pytest.mark.parametrize("delayacct", [True, False])
def test_delay_accounting_is_what_the_point_asks(build, delayacct):
    before = knobs.TASK_DELAYACCT.read_text()
    point = grid.resolve({**SIZE, "method": "fork", "delayacct": delayacct})
    record = runner.run(point, build)
    assert record["status"] == "ok", record["reason"]
    assert record["delayacct_effective"] is delayacct
    assert ("writer_wpcopy_count" in record) is delayacct
    if not delayacct:
        assert record["writer_wpcopy_source"] == "not counted: kernel.task_delayacct is 0 (delay accounting off)"
    assert knobs.TASK_DELAYACCT.read_text() == before


@needs_root
def test_mthp_point_under_thp_mode_always_gets_its_folio_size(build):
    # Under THP "always" the 2 MiB size (inherit) would win over 64 KiB
    # folios: the point turns every other size off for its run.
    size = knobs.environment.THP_DIR / "hugepages-64kB"
    if not size.exists():
        pytest.skip("this kernel offers no 64 KiB THP size")
    pmd = knobs.environment.THP_DIR / "hugepages-2048kB" / "enabled"
    before = knobs.current(pmd)
    point = grid.resolve({**SIZE, "method": "none", "backing": "mthp-64k", "thp_mode": "always"})
    record = runner.run(point, build)
    assert record["status"] == "ok", record["reason"]
    assert record["thp_enabled"] == "always" and record["huge_kib"] == 0
    assert record["mthp_fault_alloc"] >= 0.9 * SIZE["size_mib"] * 1024 / 64
    assert knobs.current(pmd) == before  # put back


def test_sampled_runs_are_not_timed(run_point):
    record = run_point(method="fork", sharing_interval_ms=5, **SIZE)
    table = aggregate.runs_table([{**record, "run_id": "x", "experiment": "x", "point_id": "p"}])
    assert not table["timed"].iloc[0]
    assert table["writers_s"].isna().all() and table["fork_s"].isna().all()
    assert table["copies"].notna().all() or table["copies_source"].iloc[0].startswith("not counted")


# ---- The clock delay accounting reads (environment.sched_clock): its copy
# counts hold only while sched_clock is stable.


def test_the_scheduler_debug_header_says_whether_sched_clock_is_stable():
    header = "Sched Debug Version: v0.11\nktime : 1.0\nsched_clk : 2.0\n"
    assert environment.sched_clock(header + "  .sched_clock_stable()                : 0\n")["sched_clock_stable"] == 0
    assert environment.sched_clock(header + "sched_clock_stable()   : 1\n")["sched_clock_stable"] == 1
    assert environment.sched_clock(header)["sched_clock_stable"] == 1  # an architecture without an unstable one
    unread = environment.sched_clock("")
    assert "sched_clock_stable" not in unread and unread["sched_clock_source"].startswith("not read: ")


@needs_root
def test_a_record_says_whether_its_clock_was_stable_and_the_mounts_stay_as_they_were(run_point):
    mounts = Path("/proc/self/mountinfo").read_text()
    record = run_point(method="none", **SIZE)
    assert record["sched_clock_source"] == "sched_debug"
    assert record["sched_clock_stable"] in (0, 1)
    assert Path("/proc/self/mountinfo").read_text() == mounts  # debugfs was read from a mount namespace of its own


def test_copies_counted_under_an_unstable_sched_clock_are_absent_with_the_reason():
    """Delay accounting drops a copy whose clock did not move: the count is a lower bound, not a count."""
    base = {"experiment": "x", "point_id": "p", "status": "ok", "method": "fork", "backing": "4k"}
    counts = {"writer_wpcopy_count": 4000.0, "writer_wpcopy_source": "taskstats", "writer_minflt": 4100.0}
    rows = [
        {**base, **counts, "run_id": "stable", "sched_clock_stable": 1},
        {**base, **counts, "run_id": "unstable", "sched_clock_stable": 0},
        {**base, **counts, "run_id": "unread", "sched_clock_source": "not read: x"},
    ]
    table = aggregate.derive(pd.DataFrame(rows)).set_index("run_id")
    assert table.loc["stable", "copies"] == table.loc["unread", "copies"] == 4000
    assert pd.isna(table.loc["unstable", "copies"])
    assert table.loc["unstable", "copies_source"] == f"not counted: {environment.SCHED_CLOCK_UNSTABLE}"
    assert table.loc["stable", "copies_source"] == "taskstats"
