"""Enough runs to answer: an experiment's precision adds rounds of runs to
the points whose comparison is open, with their baselines, up to the cap.
Real Snakemake on tiny points; which points need more runs is decided from
tables the code under test computes."""

import json

import pandas as pd
from run_workflow import snakemake

from cowsnap.analyse import precision

TINY = "{size_mib: 2, batch_kib: 256, memcpy_mib: 0, writers: 1, copiers: 1}"


def test_open_comparisons_get_rounds_of_runs_up_to_the_cap(sweep_folder):
    # A half-width no interval of 3 runs can meet: every point is open, so
    # each round adds `step` runs to every point, until the cap.
    (sweep_folder / "config" / "config.yaml").write_text(
        "experiments:\n  e:\n    repetitions: 3\n"
        "    precision: {max_repetitions: 7, step: 2, ratio_half_width: 0.000001}\n"
        f"    baseline: {{method: none}}\n    base: {TINY}\n    matrix: {{method: [none, fork]}}\n"
    )
    done = snakemake("--cores", "2", cwd=sweep_folder, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = pd.read_csv(sweep_folder / "results" / "e" / "runs.csv")
    assert sorted(runs.groupby("point_id").size()) == [7, 7]  # 3 planned, rounds of 2, 2 and 1 (the cap)
    assert json.loads((sweep_folder / "results" / "e" / "more" / "0.json").read_text())
    # Done is done: nothing reruns.
    again = snakemake("--cores", "2", "--dry-run", cwd=sweep_folder)
    assert "Nothing to be done" in again.stdout + again.stderr


def comparisons(rows):
    """(lever, metric, ratio, resolved) rows of a comparisons table."""
    return pd.DataFrame(
        [{"experiment": "e", "point_id": p, "node_type": "n", "metric": m, "objective": True, "ratio": r,
          "resolved": done} for p, m, r, done in rows]
    )  # fmt: skip


def test_a_lever_is_open_while_it_may_still_be_better_on_an_objective():
    table = comparisons(
        [
            ("a", "writers_s", 0.9, False),  # open, and better by its median: may be the best
            ("b", "writers_s", 1.2, False),  # open, but only ever worse: more runs decide nothing
            ("c", "writers_s", 0.5, True),  # resolved already
            ("c", "write_max_s", 1.5, True),
            ("d", "snapshot_memory_mib", 0.8, False),  # open on memory only
        ]
    )
    assert precision.open_levers(table) == {"a", "d"}
    assert precision.open_levers(table.assign(resolved=True)) == set()
