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


def ranking(rows):
    points = pd.DataFrame(
        [{"experiment": "e", "point_id": p, "node_type": "n", "start": "with_child", "backing": "4k",
          "baseline_id": "b"} for p, *_ in rows]
    )  # fmt: skip
    ratios = pd.DataFrame(
        [{"experiment": "e", "point_id": p, "node_type": "n", "metric": "writers_s", "baseline_method": "none",
          "ratio": r, "ci_low": lo, "ci_high": hi} for p, r, lo, hi in rows]
    )  # fmt: skip
    return points, ratios


def test_a_point_is_open_while_its_ranking_step_overlaps_or_its_interval_is_too_wide():
    points, ratios = ranking([("a", 1.0, 0.9, 1.1), ("b", 1.5, 1.4, 1.6), ("c", 1.55, 1.5, 1.7)])
    assert precision.unresolved(points, ratios) == {"b", "c"}  # a is resolved from b
    assert precision.unresolved(points, ratios, half_width=0.05) == {"a", "b", "c"}  # a's is 10% wide
    points, ratios = ranking([("a", 1.0, 0.98, 1.02), ("b", 1.5, 1.48, 1.52)])
    assert precision.unresolved(points, ratios, half_width=0.05) == set()
