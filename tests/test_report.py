"""Figures, statistics, the summary and comparisons, from a small table of
real runs checked in under tests/data (so no timing is involved)."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from cowsnap import compare, plots, stats, summary

DATA = Path(__file__).parent / "data" / "results"


@pytest.fixture
def runs():
    return pd.concat([pd.read_csv(p) for p in sorted(DATA.glob("*/runs.csv"))], ignore_index=True)


@pytest.fixture
def tiny():
    return pd.read_csv(DATA / "tiny" / "runs.csv"), pd.read_csv(DATA / "tiny" / "sharing.csv")


@pytest.mark.parametrize("name", list(plots.FIGURES))
def test_every_figure_draws_from_the_fixed_table(tiny, tmp_path, name):
    runs, sharing = tiny
    outputs = plots.draw(name, runs, sharing, tmp_path / name, "tiny")
    assert [p.suffix for p in outputs] == [".png", ".pdf"]
    assert all(p.stat().st_size > 5000 for p in outputs)
    text = plots.caption(name, "tiny", "A tiny sweep.", runs)
    assert "tiny" in text and "12 runs of 4 points" in text


def test_figures_for_an_experiment():
    assert "ratios" in plots.figures_for({"fork", "none"}, has_baseline=True)
    assert "ratios" not in plots.figures_for({"fork"}, has_baseline=False)
    assert "sharing_timeline" not in plots.figures_for({"fork", "none"}, has_baseline=True)
    assert "sharing_timeline" in plots.figures_for({"fork"}, has_baseline=False, samples_sharing=True)


def test_median_and_ratio_intervals():
    assert stats.median_ci([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)
    median, low, high = stats.median_ci([1.0, 2.0, 3.0, 4.0, 100.0])
    assert median == 3.0 and low <= median <= high
    ratio, low, high = stats.ratio_ci([2.0, 2.2, 1.8], [1.0, 1.1, 0.9])
    assert ratio == pytest.approx(2.0) and low <= ratio <= high


def test_every_metric_declares_its_better_direction():
    assert {better for _, better in stats.METRICS.values()} <= {"lower", "higher"}


def test_baseline_ratios_of_the_fixed_table(tiny):
    runs, _ = tiny
    table = stats.baseline_ratios(runs, metrics=("writers_s",))
    fork = runs[(runs["method"] == "fork") & (runs["start"] == "with_child")]
    none = runs[runs["method"] == "none"]
    row = table[table["point_id"] == fork["point_id"].iloc[0]].iloc[0]
    assert row["ratio"] == pytest.approx(fork["writers_s"].median() / none["writers_s"].median())
    assert row["ci_low"] <= row["ratio"] <= row["ci_high"]
    assert row["better"] == "lower"
    assert none["point_id"].iloc[0] not in set(table["point_id"])  # the baseline itself


def test_summary_numbers_are_the_tables(runs):
    text = summary.build(runs)
    ok = runs[runs["status"] == "ok"]
    fork = ok[(ok["method"] == "fork") & (ok["start"] == "with_child")]
    none = ok[ok["method"] == "none"]
    ratio = stats.ratio_ci(fork["writers_s"], none["writers_s"])
    assert summary.fmt_ci(ratio) in text
    assert f"{summary.fmt(fork['writers_s'].median())} s against {summary.fmt(none['writers_s'].median())} s" in text
    assert f"{summary.fmt_count(fork['copies'].median())} copies" in text
    after = ok[(ok["method"] == "fork") & (ok["start"] == "after_child")]
    assert f"took {summary.fmt_count(after['writer_minflt'].median())} faults" in text
    skipped = runs[runs["status"] == "skipped"].iloc[0]
    assert skipped["reason"] in text


def copy_results(tmp_path, name, **changes):
    folder = tmp_path / name
    shutil.copytree(DATA, folder)
    for path in folder.glob("*/runs.csv"):
        table = pd.read_csv(path)
        for key, value in changes.items():
            table[key] = value
        table.to_csv(path, index=False)
    return folder


def test_comparison_flags_a_machine_mismatch(tmp_path):
    a = copy_results(tmp_path, "a")
    b = copy_results(tmp_path, "b", kernel="9.9.9-other")
    notes = compare.write(a, b, tmp_path / "out")
    assert any("machine mismatch" in note and "kernel" in note for note in notes)
    assert "machine mismatch" in (tmp_path / "out" / "compare.md").read_text()
    table = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert set(table["point_id"]) >= {p for p in pd.read_csv(a / "tiny" / "runs.csv")["point_id"]}
    # Same data on both sides: every ratio of medians is 1.
    assert table.dropna(subset=["ratio"])["ratio"].eq(1.0).all()
    assert (tmp_path / "out" / "compare.png").exists()


def test_comparison_refuses_to_pool_machines_unless_asked(tmp_path):
    a = copy_results(tmp_path, "a")
    mixed = tmp_path / "mixed"
    shutil.copytree(a, mixed)
    table = pd.read_csv(mixed / "tiny" / "runs.csv")
    table.loc[table.index[:3], "hostname"] = "another-node"
    table.to_csv(mixed / "tiny" / "runs.csv", index=False)
    with pytest.raises(compare.CompareError, match="2 machines"):
        compare.write(a, mixed, tmp_path / "out")
    notes = compare.write(a, mixed, tmp_path / "out", pool=True)
    assert any("pools runs from 2 machines" in note for note in notes)


def test_summary_keeps_node_types_apart(runs):
    slower = runs.assign(
        hostname="node-b",
        kernel="9.9.9-other",
        node_type=runs["node_type"].str.rsplit(" | ", n=1).str[0] + " | 9.9.9-other",
        writers_s=runs["writers_s"] * 10,
    )
    text = summary.build(pd.concat([runs, slower], ignore_index=True))
    assert "Runs from several machines" in text
    ok = runs[runs["status"] == "ok"]
    fork = ok[(ok["method"] == "fork") & (ok["start"] == "with_child")]
    # Each node type's writers' time stands on its own line, never pooled.
    assert f"({summary.fmt(fork['writers_s'].median())} s against" in text
    assert f"({summary.fmt(10 * fork['writers_s'].median())} s against" in text
    for node_type in (runs["node_type"].iloc[0], slower["node_type"].iloc[0]):
        assert f"method=fork, start=with_child on {node_type}:" in text
