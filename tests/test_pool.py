"""`cowsnap watch` on pools of forked Python workers (examples/): the
workers are named as the copiers, their copies agree with the growth of
their own private dirty memory (each worker reads its smaps_rollup and the
program prints it), and flat buffers copy a small fraction of what objects
do. Each worker waits for nothing but its own passes and lingers after
them, and every copy is counted at its exit, so nothing here races a clock."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_watch import copies_counted_or_skip

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
ITEMS = 100_000  # about 20 MiB of objects: quick on 2 cores, far above the copies a fork alone makes
WORKERS = 2
BOUND_S = 300  # a watch that takes longer has failed
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (taskstats, the delay accounting knob)")


def watched(build, example: str, tmp_path: Path) -> tuple[dict, dict]:
    """`cowsnap watch -- python3 examples/<example>.py`: its watch.json, and
    the line the program printed of what its workers measured themselves."""
    out = tmp_path / example
    command = [sys.executable, str(EXAMPLES / f"{example}.py"), "--items", str(ITEMS), "--workers", str(WORKERS)]
    done = subprocess.run(
        [sys.executable, "-m", "cowsnap.cli", "watch", "--interval", "0.2", "--build-dir", str(build.directory.parent),
         "--out", str(out), "--", *command],
        capture_output=True, text=True, timeout=BOUND_S, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    program = json.loads(next(line for line in done.stdout.splitlines() if line.startswith('{"program"')))
    result = json.loads((out / "watch.json").read_text())
    copies_counted_or_skip(result)
    return result, program


def children_copies(result: dict) -> float:
    return sum(entry["wpcopy_count"] for entry in result["roles"].values())


@needs_root
def test_a_python_pool_names_its_workers_as_the_copiers(build, tmp_path):
    result, program = watched(build, "pool_objects", tmp_path)
    assert list(result["roles"]) == ["worker"], result["roles"]
    workers = result["roles"]["worker"]
    assert workers["count"] == WORKERS and workers["source"] == "taskstats"
    grown = sum(program["worker_private_dirty_growth_pages"])
    assert 0.8 * grown <= workers["wpcopy_count"] <= 1.3 * grown, (workers["wpcopy_count"], grown)
    verdict = "\n".join(result["verdict"])
    assert f"workers: {WORKERS} workers copied" in verdict
    assert "snapshot" not in verdict and "MADV_DONTFORK" not in verdict and "MADV_POPULATE_WRITE" not in verdict
    assert "reference count" in verdict  # the levers for an interpreter whose reads write


@needs_root
def test_flat_buffers_copy_at_most_a_tenth_of_what_objects_copy(build, tmp_path):
    objects, _ = watched(build, "pool_objects", tmp_path)
    flat, program = watched(build, "pool_flat", tmp_path)
    assert program["heap_pages_at_fork"] > 0
    assert children_copies(flat) <= 0.1 * children_copies(objects), (flat["roles"], objects["roles"])


@needs_root
@pytest.mark.parametrize("example", ["pool_objects", "pool_forkserver"])
def test_a_pool_as_a_watch_point_records_each_roles_copies(build, example):
    """The pool experiment's point, as config/config.yaml writes it: the
    record gives the workers' copies and peak private memory apart from
    the helpers' (a fork server, exec'd), and no snapshot child."""
    from cowsnap.measure.watch import point as watch_point
    from cowsnap.plan import grid

    script = f'"$COWSNAP_EXAMPLES"/{example}.py --items {ITEMS} --ready-file ready --go-file go --end-file end'
    keys = {
        "watch_command": f"sh -c 'exec python3 {script}'",
        "ready_command": "test -e ready",
        "snapshot_command": "touch go",
        "after_command": "touch end",
        "watch_after_s": 0.2,
        "timeout_s": 120,
    }
    record = watch_point.run(grid.resolve({"method": "watch", **keys}), build)
    assert record["status"] == "ok", record["reason"]
    assert record["worker_count"] == WORKERS and "snapshot_child_count" not in record
    assert record["worker_wpcopy_source"] == "taskstats"
    during = record["worker_wpcopy_count_during_snapshot"] + record["worker_wpcopy_count_after_snapshot"]
    assert during == record["worker_wpcopy_count"]
    if example == "pool_objects":  # they copy the objects they read: most of the parent's heap, each
        assert record["worker_wpcopy_count"] >= 0.5 * WORKERS * record["anon_pages"]
        assert "helper_count" not in record
    else:  # the fork server is a helper; its workers build their own data, and copy little
        assert record["helper_count"] >= 1
        assert record["worker_private_dirty_pages"] >= 4 * record["worker_wpcopy_count"]


def test_the_levers_are_the_measured_tables_numbers(tmp_path):
    """Each lever line says what its example measured, against the
    problem's copies; without the problem's row, no lever is advised."""
    from cowsnap.analyse.watch import levers

    assert all((EXAMPLES / f"{name}.py").exists() for name in levers.EXAMPLES)
    rows = levers.read()
    assert {row["example"] for row in rows} == set(levers.EXAMPLES)  # the shipped table measured every lever
    made = [
        {"example": "pool_objects", "runs": 3.0, "workers": 2.0, "anon_pages": 1000.0, "worker_wpcopy_count": 1800.0,
         "worker_private_dirty_pages": 1850.0, "copied_share": 0.9, "kernel": "k", "measured_on": "d"},
        {"example": "pool_flat", "runs": 3.0, "workers": 2.0, "anon_pages": 900.0, "worker_wpcopy_count": 90.0,
         "worker_private_dirty_pages": 120.0, "copied_share": 0.05, "kernel": "k", "measured_on": "d"},
    ]  # fmt: skip
    levers.write(made, tmp_path / "levers.csv")
    lines = levers.lever_lines(levers.read(tmp_path / "levers.csv"))
    assert "the workers copied 7.0 MiB, 90% of what each shared" in lines[0]
    assert "examples/pool_flat.py): the workers copied 0.4 MiB, 5% of what they copied of objects" in lines[1]
    assert len(lines) == 2  # only what was measured
    assert levers.lever_lines(made[1:])[0].startswith("no lever for these workers was measured here")


# A sweep's pool experiment, its records as it wrote them (config/config.yaml's
# `pool` entry run alone on 2026-12-06: 5 programs, 3 runs each).
POOL_SWEEP = REPO / "tests" / "data" / "results" / "pool-sweep"


def test_the_shipped_levers_table_is_what_its_sweeps_records_give(tmp_path):
    """cowsnap/analyse/watch/levers.csv is written from a sweep's records,
    never by hand: regenerated from the stored ones, it is the same file."""
    from cowsnap.analyse.watch import levers

    assert levers.main([str(POOL_SWEEP), str(tmp_path / "levers.csv")]) == 0
    assert (tmp_path / "levers.csv").read_text() == levers.TABLE.read_text()


def test_a_watch_point_is_named_by_what_its_command_runs():
    from cowsnap.analyse.watch import levers

    script = """sh -c 'exec python3 "$COWSNAP_EXAMPLES"/pool_flat.py --items 200000 --ready-file ready'"""
    assert levers.program_of(script) == levers.example_of(script) == "pool_flat"
    assert levers.program_of("redis-server --port 0 --save ''") == "redis-server"
    assert levers.program_of("env A=1 python3 -X dev -m http.server 8000") == "http.server"
    assert levers.program_of(["/usr/bin/python3", "-u", "/srv/train.py"]) == "train"
    assert levers.example_of("python3 train.py") == ""


def pool_sweep_tables():
    """The stored pool sweep's runs, points and comparisons tables, as its
    aggregate made them (each program's reference: the default config's)."""
    from cowsnap.analyse import aggregate
    from cowsnap.measure import records
    from cowsnap.plan import config, grid

    references = grid.references(config.load(REPO / "config" / "config.yaml"), "pool")
    runs = aggregate.runs_table([records.read(path) for path in sorted(POOL_SWEEP.glob("pool/p*/*.json"))])
    runs["reference_id"] = runs["point_id"].map(references).fillna("")
    tables = aggregate.statistics(runs)
    return runs, tables["points"], tables["comparisons"]


def test_a_pools_summary_line_leads_with_what_its_workers_copied():
    import pandas as pd

    from cowsnap.analyse import summary, verdict
    from cowsnap.analyse.watch import levers

    runs, points, comparisons = pool_sweep_tables()
    text = summary.build(runs, points, pd.DataFrame(), None, comparisons)
    assert "- pool: sh" not in text  # named by the script, not the shell that runs it
    for name in levers.EXAMPLES:
        items = [" ".join(item.split()) for item in ("\n" + text).split("\n- ")[1:]]  # wrapped lines joined
        (line,) = [item for item in items if item.startswith(f"pool: {name}: ")]
        point = points[points["watch_command"].str.contains(f"/{name}.py")].iloc[0]
        copies = point["worker_wpcopy_count"]
        assert line.startswith(f"pool: {name}: its 2 workers copied {copies:,.0f} pages, {verdict.mib(copies)}, "), line
        assert f"their private memory peaked at {verdict.mib(point['worker_private_dirty_pages'])}" in line
        assert line.index("their private memory peaked") < line.index("minor faults")  # before the parent's


def test_the_pools_are_ranked_against_the_objects_round_by_round():
    from cowsnap.analyse import summary

    _, points, comparisons = pool_sweep_tables()
    lines = summary.watch_points(points, comparisons)
    ranked = [line for line in lines if line[:1].isdigit()]
    assert [line.split(",")[0] for line in ranked] == [
        "1. pool_flat", "2. pool_shared_memory", "3. pool_forkserver", "4. pool_gc_freeze",
    ]  # fmt: skip
    flat = ranked[0]
    assert "workers' copies 0.0325x (0.0323-0.0325) better" in flat
    assert "workers' peak private memory" in flat and flat.endswith("better")
    assert ranked[2].endswith("worse")  # pool_forkserver: its workers' memory peaks higher
    assert "3 rounds: 75.0%" in " ".join(lines)
