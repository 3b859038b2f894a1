"""Watch points (method=watch): a program of the user's run under cowsnap
watch as a point of a sweep, with real processes. The program the tests
compile (tests/data/cowpoint.c) takes its own fork snapshot and holds each
step until the point's commands say go, so nothing depends on timing: it
fills its pages, forks when snapshot_command touches go-fork, writes half its
pages while the child holds them, lets the child exit, and writes the other
half when after_command touches go-after."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import delayacct_not_ours
from run_workflow import snakemake

from cowsnap.measure import knobs
from cowsnap.measure.watch import point as watch_point
from cowsnap.plan import config, grid

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
PAGES = 8192  # 32 MiB of 4 KiB pages: half written while the child lives, half after
HALF = PAGES // 2
INTERFERED = "switched off during the watch by another program"
MISSING = "cowsnap-no-such-program"
BOUND_S = 120  # a wait that takes longer has failed


@pytest.fixture(scope="session")
def cowpoint(tmp_path_factory) -> Path:
    program = tmp_path_factory.mktemp("cowpoint") / "cowpoint"
    subprocess.run(["cc", "-O2", "-Wall", str(DATA / "cowpoint.c"), "-o", str(program)], check=True)
    return program


def steps(program: Path, pages: int = PAGES) -> dict:
    """The keys that hold cowpoint (writing `pages`) at known points."""
    return {
        "watch_command": [str(program), str(pages)],
        "ready_command": "test -e filled",
        "snapshot_command": "touch go-fork",
        "after_command": "touch go-after",
        "watch_after_s": 120,  # a bound: cowpoint exits by itself once it wrote
        "timeout_s": 120,
    }


def watch_point_of(**keys) -> dict:
    """A watch point as the grid makes it (defaults, normalised, checked)."""
    point = grid.resolve({"method": "watch", **keys})
    grid.check_point(point, "point")
    return point


def running(marker: str) -> list[str]:
    """Command lines of the processes whose command line holds marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in line:
            found.append(f"{entry.name}: {line}")
    return found


def measured_or_skip(record: dict) -> dict:
    if record["status"] == "skipped":
        pytest.skip(f"not on this machine: {record['reason']}")
    assert record["status"] == "ok", record["reason"]
    if INTERFERED in record["writer_wpcopy_source"]:
        delayacct_not_ours(
            f"another program changed kernel.task_delayacct during the watch: {record['writer_wpcopy_source']}"
        )
    assert record["writer_wpcopy_source"] == "taskstats", record["writer_wpcopy_source"]
    return record


def assert_copies_then_reuses(record: dict) -> None:
    # About one copy per page written while the child held it (a few more
    # for the program's own stack and libc pages)...
    assert HALF <= record["writer_wpcopy_count_during_snapshot"] <= 1.05 * HALF + 64, record
    assert record["writer_wpcopy_delay_s_during_snapshot"] > 0
    # ...and none after it exited: every write fault reuses its page
    # (pgreuse is system-wide, so only a floor holds).
    assert record["writer_wpcopy_count_after_snapshot"] <= 0.01 * HALF, record
    assert record["writer_minflt_after_snapshot"] >= HALF
    assert record["pgreuse_after_snapshot"] >= 0.9 * HALF
    assert record["writer_wpcopy_count"] == (
        record["writer_wpcopy_count_during_snapshot"] + record["writer_wpcopy_count_after_snapshot"]
    )
    assert record["children"] == 1 and record["child_wpcopy_source"] == "taskstats"
    assert record["anon_pages"] >= PAGES
    assert 0 < record["snapshot_end_s"] <= record["watch_s_during_snapshot"] + 0.05


# ---- the grid


def test_benchmark_points_keep_the_ids_they_had_before_watch_points():
    # Ids computed before the watch keys existed (and after write_latency_kib
    # was added, which changed every benchmark point's measurement and id):
    # no benchmark result is measured again. (The thread counts were the
    # defaults then; they are `auto` now.)
    threads = {"writers": 2, "copiers": 2}
    before = {"p649264c18d": threads, "p4abd9c81c9": {"method": "none", "size_mib": 8, **threads}}
    for point_id, settings in before.items():
        point = grid.normalise({**config.point_defaults(), **settings})
        assert not set(grid.WATCH_KEYS) & set(point)
        assert grid.point_id(point) == point_id
        assert grid.point_id({**point, "write_latency_kib": 0}) != point_id  # another measurement
    shipped = config.load(REPO / "config" / "config.yaml")
    # The seed's snapshots do not check their copy (check_copy: false): another measurement, other ids; its
    # no-snapshot point (check_copy does not apply) keeps its id, and so do the others without check_copy.
    seed_ids = {r.point_id for r in grid.expand(shipped) if r.experiment == "seed"}
    assert seed_ids == {"p4a01fe4d20", "pef6f9f2407", "p7ee71b2f92"}
    shipped["experiments"]["seed"]["base"]["check_copy"] = True  # the default
    assert {r.point_id for r in grid.expand(shipped) if r.experiment == "seed"} == {
        "pe9dd5e0b3f",
        "pd3e1723f9b",
        "p7ee71b2f92",
    }


def test_a_command_has_one_form_and_one_id():
    as_list = watch_point_of(watch_command=["sh", "-c", "exec sleep 1"])
    as_text = watch_point_of(watch_command="sh -c 'exec sleep 1'")
    assert as_list == as_text and grid.point_id(as_list) == grid.point_id(as_text)
    # A matrix may cross the benchmark and a program: each point keeps its own keys.
    raw = {"base": {"size_mib": 8, "watch_command": "prog"}, "matrix": {"method": ["fork", "watch"]}}
    runs = grid.expand(config.validate({"experiments": {"e": raw}}))
    fork, watched = (next(r.point for r in runs if r.point["method"] == m) for m in ("fork", "watch"))
    assert fork["size_mib"] == 8 and "watch_command" not in fork
    assert watched["watch_command"] == "prog" and watched["size_mib"] == config.point_defaults()["size_mib"]
    assert "size_mib" not in grid.recorded_settings(watched)


# ---- one point, run directly


def test_a_command_not_installed_skips_the_point_with_the_reason(build):
    point = watch_point_of(watch_command="sleep 60", load_command=f"{MISSING} --load")
    record = watch_point.run(point, build)
    assert record["status"] == "skipped"
    assert record["reason"] == f"load_command: {MISSING} is not installed here (not found on PATH, or not executable)"
    assert not running(MISSING) and "writer_wpcopy_count" not in record


SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)", "{marker}"]  # marked, to be found
FAILURES = {
    "program exits before it is ready": (
        {"watch_command": "sh -c 'echo {marker} gave up; exit 3'", "ready_command": "false"},
        "watch_command exited with status 3 before the snapshot ended: {marker} gave up",
    ),
    "never ready": (
        {"watch_command": SLEEPER, "ready_command": "sh -c 'echo not yet; exit 1'", "timeout_s": 2},
        "watch_command not ready within timeout_s=2 s: ready_command last exited with status 1: not yet",
    ),
    "setup fails": (
        {"watch_command": SLEEPER, "setup_command": "sh -c 'echo no room >&2; exit 5'"},
        "setup_command exited with status 5: no room",
    ),
    "load fails": (
        {"watch_command": SLEEPER, "load_command": "sh -c 'echo no server; exit 4'", "load_lead_s": 60},
        "load_command exited with status 4: no server",
    ),
    "the program never forks": (
        {"watch_command": SLEEPER, "snapshot_command": "true", "timeout_s": 0.5},
        "the snapshot did not end within timeout_s=0.5 s after snapshot_command: the program forked no child",
    ),
    "the snapshot child never exits": (
        {
            "watch_command": [sys.executable, "-c", "import os, time; os.fork(); time.sleep(600)", "{marker}"],
            "timeout_s": 0.5,
        },
        "the snapshot did not end within timeout_s=0.5 s (no snapshot_command: the program forks itself): "
        "1 children forked, 1 still running",
    ),
}


@pytest.mark.parametrize("keys, reason", FAILURES.values(), ids=FAILURES.keys())
def test_a_failed_step_fails_the_point_and_stops_every_process(build, tmp_path, keys, reason):
    marker = f"cowsnap-test-{tmp_path.name}"
    keys = json.loads(json.dumps(keys).replace("{marker}", marker))
    record = watch_point.run(watch_point_of(**keys), build)
    if record["status"] == "skipped":
        pytest.skip(f"not on this machine: {record['reason']}")
    assert record["status"] == "failed"
    assert record["reason"] == reason.replace("{marker}", marker)
    assert not running(marker)  # the program, its child and the load: all stopped


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_an_interrupted_point_leaves_no_process_behind(build, tmp_path, signum):
    # A point held forever before its snapshot (ready_command never succeeds);
    # its runner is stopped once the program runs.
    marker = f"cowsnap-test-{tmp_path.name}"
    # ready_command leaves a file each time it fails: the watch follows the program by then.
    tried = tmp_path / "tried"
    keys = [
        f"watch_command={shlex.join(SLEEPER).replace('{marker}', marker)}",
        f"ready_command=sh -c 'touch {tried}; false'",
    ]
    record = tmp_path / "record.json"
    runner = subprocess.Popen(
        [sys.executable, "-m", "cowsnap.cli", "run", "method=watch", *keys, "timeout_s=600"]
        + ["--build-dir", str(build.directory.parent), "--out", str(record)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + BOUND_S
        while not (running(marker) and tried.exists()):
            assert runner.poll() is None, runner.stderr.read()
            assert time.monotonic() < deadline, "the program never started"
            time.sleep(0.01)
        runner.send_signal(signum)
        runner.wait(BOUND_S)
    finally:
        runner.kill()
        runner.wait()
        knobs.restore_journal()  # what a SIGKILL left changed
    deadline = time.monotonic() + BOUND_S  # SIGKILL: the kernel kills the program when its runner dies
    while running(marker):
        assert time.monotonic() < deadline, running(marker)
        time.sleep(0.01)
    if signum == signal.SIGTERM:  # stopped, not killed: what it had read is kept beside the record
        timeline = pd.read_csv(tmp_path / "record.timeline.csv")
        assert (timeline["role"] == "watched").any() and (timeline["scope"] == "system-wide").any()


# ---- a sweep with a watch point next to the benchmark


def mixed_config(program: Path) -> dict:
    """The benchmark's fork point and the compiled program, in one experiment,
    with a program that is not installed."""
    watch_keys = steps(program)
    command = watch_keys.pop("watch_command")
    return {
        "experiments": {
            "mixed": {
                "description": "The benchmark next to a program that forks its own snapshot.",
                "repetitions": 2,
                "base": {"size_mib": 8, "batch_kib": 512, "memcpy_mib": 0, **watch_keys},
                "matrix": [
                    {"method": ["fork"]},
                    {"method": ["watch"], "watch_command": [command, f"{MISSING} --serve"]},
                ],
            }
        }
    }


def test_a_sweep_puts_a_program_next_to_the_benchmark(sweep_folder, cowpoint):
    (sweep_folder / "config" / "config.yaml").write_text(yaml.safe_dump(mixed_config(cowpoint)))
    planned = snakemake("--cores", "2", "--dry-run", cwd=sweep_folder)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    # Four watch runs and two benchmark runs, each holding the one bench_slot.
    blocks = planned.stdout.split("\nrule ")[1:]  # one per job, from its rule's name to the next job
    for rule, count in (("watch_point", 4), ("run_point", 2)):
        jobs = [block for block in blocks if block.startswith(f"{rule}:")]
        assert len(jobs) == count and all("bench_slot=1" in job for job in jobs), planned.stdout
    done = snakemake("--cores", "2", cwd=sweep_folder)
    assert done.returncode == 0, done.stdout + done.stderr
    results = sweep_folder / "results"
    runs = pd.read_csv(results / "mixed" / "runs.csv")
    assert sorted(runs["method"]) == ["fork", "fork", "watch", "watch", "watch", "watch"]
    watched = runs[(runs["method"] == "watch") & (runs["status"] == "ok")]
    assert len(watched) == 2
    for run_id in watched["run_id"]:
        record = measured_or_skip(json.loads((results / f"{run_id}.json").read_text()))
        assert_copies_then_reuses(record)
        assert "size_mib" not in record and record["watch_command"] == f"{cowpoint} {PAGES}"
    # The same columns for the benchmark's fork runs and the program's runs.
    fork = runs[runs["method"] == "fork"]
    for column in ("copies_during_snapshot", "copies_after_snapshot", "reuses_after_snapshot", "copy_delay_s"):
        assert fork[column].notna().all() and watched[column].notna().all(), column
    skipped = runs[runs["status"] == "skipped"]
    assert len(skipped) == 2
    assert set(skipped["reason"]) == {
        f"watch_command: {MISSING} is not installed here (not found on PATH, or not executable)"
    }
    points = pd.read_csv(results / "mixed" / "points.csv")
    program = points[points["method"] == "watch"].iloc[0]
    assert program["n"] == 2 and program["label"] == f"method=watch, watch_command={cowpoint} {PAGES}"
    for figure in ("phase_faults", "phase_kernel_time", "writer_faults", "kernel_time"):
        assert (results / "figures" / f"mixed-{figure}.png").stat().st_size > 1000, figure
    caption = (results / "figures" / "mixed-phase_faults.caption.txt").read_text()
    assert "Copies against reuses, per phase" in caption and "50.0% confidence" in caption  # 2 runs: [min, max]
    summary = (results / "summary.md").read_text()
    items = [" ".join(item.split()) for item in ("\n" + summary).split("\n- ")[1:]]  # wrapped lines joined
    line = next(item for item in items if item.startswith(f"mixed: cowpoint, {program['label']}: "))
    assert "while its snapshot lived" in line and ": copying: " in line and "After it ended" in line
    assert "s in the COW-copy fault path of" in line
    after = line.split("After it ended")[1]
    assert "not copying: 0 of " in after and " reuses" in after
    assert f"{MISSING} --serve: skipped: watch_command: {MISSING} is not installed here" in " ".join(summary.split())
    assert "| mixed | method=fork | child alive | copying: " in summary
    assert not running(str(cowpoint))
