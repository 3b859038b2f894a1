"""Figures, statistics, the summary and comparisons, from small tables of
real runs checked in under tests/data (so no timing is involved), and from
tables made to be adversarial."""

import ast
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cowsnap.analyse import after_exit, aggregate, compare, glossary, plots, stats, summary, verdict
from cowsnap.plan import config

DATA = Path(__file__).parent / "data" / "results"
REPO = Path(__file__).resolve().parent.parent


def tables_of(experiment: str) -> dict[str, pd.DataFrame]:
    return {name: aggregate.read_table(DATA / experiment / f"{name}.csv") for name in plots_inputs()}


def plots_inputs():
    return ("points", "ratios", "runs", "sharing")


@pytest.fixture
def tiny():
    return tables_of("tiny")


def all_tables():
    return {
        name: pd.concat([aggregate.read_table(p) for p in sorted(DATA.glob(f"*/{name}.csv"))], ignore_index=True)
        for name in ("runs", "points", "ratios")
    }


# ---- statistics


def test_order_statistic_intervals_have_their_true_level():
    assert stats.order_statistic_interval(3) == (1, 0.75)
    assert stats.order_statistic_interval(5) == (1, 0.9375)
    j, level = stats.order_statistic_interval(10)
    assert j == 2 and level == pytest.approx(1 - 2 * (1 + 10) / 1024)  # [x(2), x(9)]
    median, low, high, level = stats.median_interval([5.0, 1.0, 4.0, 2.0, 3.0, 100.0, 6.0, 7.0, 8.0, 9.0])
    assert (median, low, high) == (5.5, 2.0, 9.0) and level >= 0.95
    assert math.isnan(stats.median_interval([1.0])[3]) is False and stats.median_interval([1.0])[3] == 0.0


def test_ratio_interval_covers_when_both_medians_do():
    ratio, low, high, level = stats.ratio_interval([2.0, 2.2, 1.8, 2.1, 1.9], [1.0, 1.1, 0.9, 1.05, 0.95])
    assert ratio == pytest.approx(2.0)
    assert low == pytest.approx(1.8 / 1.1) and high == pytest.approx(2.2 / 0.9)
    assert level == pytest.approx(0.9375**2)


def test_points_and_ratios_are_the_one_statistics_pass(tiny):
    runs, points, ratios = tiny["runs"], tiny["points"], tiny["ratios"]
    ok = runs[runs["status"] == "ok"]
    for _, point in points.iterrows():
        group = ok[ok["point_id"] == point["point_id"]]
        assert point["n"] == len(group)
        assert point["writer_minflt"] == group["writer_minflt"].median()
        assert point["writer_minflt_ci_low"] == group["writer_minflt"].min()  # 3 runs: [min, max]
        assert point["writer_minflt_ci_level"] == 0.75
    fork = points[(points["method"] == "fork") & (points["start"] == "with_child") & points["timed"]].iloc[0]
    row = ratios[(ratios["point_id"] == fork["point_id"]) & (ratios["metric"] == "writers_s")].iloc[0]
    none = ok[ok["method"] == "none"].set_index("repetition")["writers_s"]
    forks = ok[ok["point_id"] == fork["point_id"]].set_index("repetition")["writers_s"]
    assert row["paired"] and row["ratio"] == pytest.approx((forks / none).median())  # run by run, same round
    assert row["label"] == fork["label"] and row["better"] == "lower"
    # A sampled run has no times, so no ratio.
    sampled = points[~points["timed"]]
    assert not sampled.empty and sampled["point_id"].iloc[0] not in set(ratios["point_id"])


def test_the_floor_shares_the_copy_with_the_cores_the_writers_leave(tiny):
    # Computed by the code under test from the recorded runs.
    runs = aggregate.derive(tiny["runs"])
    points = stats.floor(runs, stats.point_table(runs))
    fork = points[(points["method"] == "fork") & points["timed"]].iloc[0]
    none = points[points["point_id"] == fork["baseline_id"]].iloc[0]
    assert not fork["copy_on_idle_cores"]  # 2 writers + 2 copiers on 2 CPUs
    assert fork["copy_floor_s"] == pytest.approx(fork["size_mib"] * 2**20 / (fork["memcpy_gbps"] * 1e9), rel=0.2)
    cpus, low = fork["online_cpus"], none["writers_s_ci_low"]
    spare = (cpus - fork["writers"]) * low
    assert fork["floor_s"] == pytest.approx(low + max(0.0, fork["copy_floor_s"] - spare) / cpus)
    # With a core to spare for each copier, the copy costs the writers nothing.
    idle = stats.floor(runs.assign(online_cpus=8), stats.point_table(runs.assign(online_cpus=8)))
    fork_idle = idle[idle["point_id"] == fork["point_id"]].iloc[0]
    assert fork_idle["copy_on_idle_cores"] and fork_idle["floor_s"] == pytest.approx(low)


def test_noise_flags_outliers_by_the_median_absolute_deviation_and_unstable_points():
    quiet = stats.noise([1.00, 1.01, 0.99, 1.00, 1.02])
    assert quiet["outliers"] == 0 and not quiet["unstable"] and quiet["cv"] < 0.02
    spiky = stats.noise([1.00, 1.01, 0.99, 1.00, 3.0])
    assert spiky["outliers"] == 1 and spiky["unstable"]


def test_noise_rules_sit_at_their_thresholds():
    # CV just over and just under NOISE_CV (10%).
    assert stats.noise([1.0, 1.0, 1.0, 1.0, 1.0 + 2.4 * verdict.NOISE_CV])["unstable"]
    assert not stats.noise([1.0, 1.0, 1.0, 1.0, 1.0 + 2.0 * verdict.NOISE_CV])["unstable"]
    # MAD 0.01: a run 0.06 away has a modified z-score of 4.05, one 0.05 away 3.37 (OUTLIER_Z 3.5).
    assert stats.noise([1.00, 1.01, 0.99, 1.01, 0.99, 1.06])["outliers"] == 1
    assert stats.noise([1.00, 1.01, 0.99, 1.01, 0.99, 1.05])["outliers"] == 0


def runs_beside(**columns) -> pd.DataFrame:
    """Five runs of a 256 MiB point whose machine measures were flat, but for columns."""
    flat = {"writers_s": [1.0, 1.3, 1.0, 1.6, 1.1], "size_mib": [256] * 5, "fresh_page_us": [1.7] * 5,
            "memcpy_gbps": [9.0] * 5, "host_reported_kib": [0] * 5, "steal_share": [0.0] * 5,
            "writer_cpu_wait_share": [0.01] * 5, "copies": [65536] * 5,
            "copy_delay_s": [0.10, 0.13, 0.10, 0.16, 0.11]}  # fmt: skip
    return pd.DataFrame({**flat, **columns})


def test_an_unstable_point_is_explained_by_the_machine_only_where_a_measure_passed_its_rule():
    quiet = stats.noise_cause(runs_beside())
    assert not quiet["machine_explains"]
    assert quiet["noise_cause"].startswith(f"none the machine measured; {verdict.COPY_FAULT_SPREAD}: 1.5-2.4 µs")
    probe = stats.noise_cause(runs_beside(fresh_page_us=[1.7, 3.5, 1.7, 5.0, 1.8]))
    assert probe["machine_explains"] and "fresh page cost varied" in probe["noise_cause"]
    array_kib = 256 * 1024
    took = stats.noise_cause(runs_beside(host_reported_kib=[0, 0, verdict.HOST_TOOK_SHARE * array_kib, 0, 0]))
    assert took["machine_explains"] and "memory reported to the host: 26 MiB" in took["noise_cause"]
    under = 0.9 * verdict.HOST_TOOK_SHARE * array_kib
    assert not stats.noise_cause(runs_beside(host_reported_kib=[0, 0, under, 0, 0]))["machine_explains"]
    stolen = [0, 0, 0, verdict.STEAL_SHARE, 0]
    assert "steal up to 2% of the CPU time" in stats.noise_cause(runs_beside(steal_share=stolen))["noise_cause"]
    assert not stats.noise_cause(runs_beside(steal_share=[s * 0.9 for s in stolen]))["machine_explains"]
    waited = [0.01, 0.01, verdict.CPU_WAIT_SHARE + 0.01, 0.01, 0.01]
    assert "CPU wait up to 11%" in stats.noise_cause(runs_beside(writer_cpu_wait_share=waited))["noise_cause"]
    at_rule = [0.01, 0.01, verdict.CPU_WAIT_SHARE, 0.01, 0.01]
    assert not stats.noise_cause(runs_beside(writer_cpu_wait_share=at_rule))["machine_explains"]


def test_a_paired_ratio_cancels_drift_between_rounds():
    # Each round is slower than the last (drift); the point is 2x its
    # baseline in every round. Paired: exactly 2, with a tight interval.
    rounds = pd.Series([1.0, 1.5, 2.0, 2.5, 3.0], index=range(5))
    paired = stats.ratio_columns("writers_s", 2 * rounds, rounds, paired=True)
    assert paired["paired"] and paired["ratio"] == pytest.approx(2.0)
    assert paired["ci_low"] == pytest.approx(2.0) and paired["ci_high"] == pytest.approx(2.0)
    unpaired = stats.ratio_columns("writers_s", 2 * rounds, rounds)
    assert not unpaired["paired"] and unpaired["ci_high"] - unpaired["ci_low"] > 1


def test_the_stored_tables_are_what_todays_statistics_make_of_their_runs(tmp_path):
    """tests/data/results/*/{points,ratios,scaling}.csv are made by
    `python -m cowsnap.analyse.aggregate --restat FOLDER`: a change to the
    statistics that leaves them stale fails here, so rerun that command."""
    folders = sorted(path.parent for path in DATA.glob("*/runs.csv"))
    assert folders
    for folder in folders:
        copy = tmp_path / folder.name
        shutil.copytree(folder, copy)
        aggregate.main(["--restat", str(copy)])
        for name in aggregate.STATISTICS:
            stored, fresh = (aggregate.read_table(where / f"{name}.csv") for where in (folder, copy))
            pd.testing.assert_frame_equal(stored, fresh, obj=f"{folder.name}/{name}.csv")


# ---- the glossary


def test_every_key_of_the_tables_has_a_glossary_entry():
    settings = set(config.axis_names())
    tables = all_tables()
    columns = set(tables["runs"]) | {re.sub(r"_ci_(low|high|level)$", "", c) for c in tables["points"]}
    for column in sorted(columns - settings):
        glossary.lookup(column)  # KeyError names the key
    assert glossary.lookup("writers_s_after_snapshot").label == "writers' time after the snapshot ended (s)"


def test_docs_key_table_is_the_glossary_command_output():
    start, end = "<!-- keys: python -m cowsnap.analyse.glossary -->\n", "<!-- end keys -->"
    keys = (REPO / "docs" / "keys.md").read_text()
    table = keys[keys.index(start) + len(start) : keys.index(end)]
    command = [sys.executable, "-m", "cowsnap.analyse.glossary"]
    printed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert table == printed == glossary.markdown_table()
    assert start not in (REPO / "README.md").read_text()  # one copy of the table


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (fenced code left out)."""
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    headings = re.findall(r"^#+ (.+)$", prose, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_links_of_the_readme_and_docs_lead_somewhere():
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    assert len(files) > 1
    for source in files:
        for target in re.findall(r"\]\(([^)\s]+)\)", source.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (source.parent / path).resolve() if path else source
            assert linked.exists(), f"{source.name}: {target}"
            if anchor:
                assert anchor in heading_anchors(linked.read_text()), f"{source.name}: {target}"


# ---- figures, tested on what is drawn


def test_bar_figures_draw_one_bar_per_point_with_its_label(tiny):
    figure, ax, empty = plots.render("writers_time", tiny, "tiny")
    points = tiny["points"]
    timed = points.dropna(subset=["writers_s"])
    assert empty == ""
    assert len([p for p in ax.patches if p.get_height() > 0]) == len(timed)
    unstable = points["unstable"].astype(str).eq("True")
    assert unstable.any()  # the flag is drawn
    flagged = points["label"] + unstable.map({True: " [unstable]", False: ""})
    assert [t.get_text() for t in ax.get_xticklabels()] == list(flagged.sort_values())
    assert ax.get_ylabel() == glossary.lookup("writers_s").label
    heights = sorted(p.get_height() for p in ax.patches if p.get_height() > 0)
    assert heights == pytest.approx(sorted(timed["writers_s"]))


def test_fault_figure_shows_copies_and_reuses_per_page(tiny):
    figure, ax, _ = plots.render("writer_faults", tiny, "tiny")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert glossary.lookup("copies").label in legend and glossary.lookup("reuses").label in legend
    assert max(p.get_height() for p in ax.patches) <= 1.1  # per page


def test_ratios_figure_draws_every_ratio_and_the_floor(tiny):
    figure, ax, _ = plots.render("ratios", tiny, "tiny")
    ratios = tiny["ratios"][tiny["ratios"]["metric"] == "writers_s"]
    markers = [line for line in ax.get_lines() if len(line.get_xdata()) == len(ratios)]
    assert len(markers) >= 2  # the ratios and the floor ratios
    assert sorted(markers[0].get_xdata()) == pytest.approx(sorted(ratios["ratio"]))


def test_a_figure_with_nothing_to_draw_says_so(tmp_path):
    tables = tables_of("other")
    outputs, empty = plots.draw("writers_time", tables, tmp_path / "w", "other")
    assert empty == "no point ran" and all(p.exists() for p in outputs)
    assert "Nothing to draw: no point ran." in plots.caption("writers_time", "other", "x", tables["points"], empty)


def test_caption_states_the_interval_level(tiny):
    text = plots.caption("writers_time", "tiny", "A tiny sweep.", tiny["points"])
    assert "of at least 75.0% confidence" in text and "15 runs of 5 points" in text


def test_plots_and_summary_compute_no_statistics():
    analyse = REPO / "cowsnap" / "analyse"
    for module in (analyse / "plots.py", *sorted((analyse / "summary").glob("*.py"))):
        tree = ast.parse(module.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
        assert "stats" not in imported, module
        assert "median_interval" not in imported and "ratio_interval" not in imported


# ---- the summary: computed words


def fork_point(**changes) -> pd.Series:
    base = {
        "experiment": "e", "point_id": "p1", "node_type": "n", "label": "method=fork", "method": "fork",
        "start": "after_child", "backing": "4k", "pages": 8192.0, "n": 5, "baseline_id": "p0",
        "copies_source": "taskstats", "writer_minflt_after_snapshot": 8192.0, "copies_after_snapshot": 0.0,
        "reuses_after_snapshot": 8192.0, "writer_stime_s_after_snapshot": 0.01, "timed": True,
    }  # fmt: skip
    return pd.Series({**base, **changes})


def words(**changes) -> str:
    runs = pd.DataFrame([{"experiment": "e", "point_id": "p1", "node_type": "n", "status": "ok", "reason": ""}])
    for key in aggregate.FINGERPRINT:
        runs[key] = "x"
    points = pd.DataFrame([fork_point(**changes)])
    return summary.build(runs, points, pd.DataFrame())


def test_no_copies_after_exit_is_not_copying():
    assert "| after its exit | not copying: 0 of 8,192 faults (0%)" in words()


def test_all_copies_after_exit_is_copying():
    text = words(copies_after_snapshot=8192.0)
    assert "| after its exit | copying: 8,192 of 8,192 faults (100%)" in text
    assert "not copying" not in text


def test_some_copies_after_exit_is_partly_copying():
    assert "partly copying: 1,000 of 8,192 faults" in words(copies_after_snapshot=1000.0)


def test_copies_not_counted_are_said_so_never_zero():
    reason = "taskstats query refused: Operation not permitted (needs CAP_NET_ADMIN)"
    text = words(copies_after_snapshot=float("nan"), copies_source=f"not counted: {reason}")
    assert f"copies not counted: {reason}" in text
    assert "0 of" not in text.split("## Is it copying?")[1]


def test_one_run_has_no_interval():
    row = fork_point(n=1, writers_s=0.5, writers_s_ci_low=0.5, writers_s_ci_high=0.5, writers_s_ci_level=0.0)
    assert summary.fmt_interval(row, "writers_s", " s") == "0.5 s (one run, no interval)"


def test_summary_of_the_fixed_tables_answers_both_questions():
    tables = all_tables()
    text = summary.build(tables["runs"], tables["points"], tables["ratios"])
    for section in ("## Is it copying?", "## How to avoid it", "## The floor", "## Points not measured"):
        assert section in text
    skipped = tables["runs"][tables["runs"]["status"] == "skipped"].iloc[0]
    assert skipped["reason"] in text


def item_texts(text: str) -> list[str]:
    """The summary's list items, each with the lines it was wrapped onto."""
    return ["- " + item for item in ("\n" + text).split("\n- ")[1:]]


def test_a_watch_point_gets_phase_figures_and_its_summary_line():
    # Real runs of the default sweep's redis point (method=watch).
    tables = tables_of("redis")
    assert plots.figures_for({"watch"}, False) == ["phase_faults", "phase_kernel_time"]
    assert plots.figures_for({"fork", "watch"}, False)[:3] == ["writers_time", "writer_faults", "kernel_time"]
    _, ax, empty = plots.render("phase_faults", tables, "redis")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert not empty and ax.get_xticklabels()[0].get_text() == "base"
    for key in ("copies_during_snapshot", "copies_after_snapshot", "reuses_after_snapshot", "child_wpcopy_count"):
        assert glossary.lookup(key).label in legend
    _, ax, empty = plots.render("phase_kernel_time", tables, "redis")
    assert (
        not empty and glossary.lookup("copy_delay_s_during_snapshot").label in ax.get_legend().get_texts()[0].get_text()
    )
    assert "75.0% confidence" in plots.caption("phase_faults", "redis", "Redis.", tables["points"])  # 3 runs
    text = summary.build(tables["runs"], tables["points"], tables["ratios"])
    row = tables["points"].iloc[0]
    line = " ".join(next(item for item in item_texts(text) if item.startswith("- redis: redis-server: ")).split())
    copies, faults = row["copies_during_snapshot"], row["writer_minflt_during_snapshot"]
    assert f"copying: {copies:,.0f} of {faults:,.0f} minor faults" in line
    assert f"its children made {row['child_wpcopy_count']:,.0f} copies" in line
    assert f"{summary.fmt(row['copy_delay_s_during_snapshot'])} s in the COW-copy fault path" in line
    assert "- No fork point of the benchmark ran." in text
    assert "No experiment compared levers with a reference snapshot" in text


def test_summary_with_no_ok_run_still_writes():
    runs = pd.DataFrame([{"experiment": "e", "point_id": "p", "node_type": "n", "status": "skipped", "reason": "why"}])
    for key in aggregate.FINGERPRINT:
        runs[key] = "x"
    for setting, value in config.point_defaults().items():
        runs[setting] = value
    text = summary.build(runs, pd.DataFrame(), pd.DataFrame())
    assert "Nothing ran: every run was skipped or failed." in text and "skipped: why" in text


# ---- comparisons


def copy_results(tmp_path, name, **changes):
    folder = tmp_path / name
    # The tables of one machine as it booted that day (latency/ was recorded under a later kernel build).
    shutil.copytree(DATA, folder, ignore=shutil.ignore_patterns("latency"))
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
    # Every point with a compared metric (a watch point has its program's kernel time, no writers' time).
    runs = pd.concat([pd.read_csv(path) for path in sorted(a.glob("*/runs.csv"))], ignore_index=True)
    measured = runs.dropna(subset=list(compare.METRICS), how="all")
    assert set(table.dropna(subset=["ratio"])["point_id"]) == set(measured["point_id"])
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


def with_references(runs: pd.DataFrame) -> pd.DataFrame:
    """Each snapshot point's reference: the fork point of its experiment (the stored runs predate references)."""
    forks = runs[runs["method"] == "fork"].drop_duplicates("experiment").set_index("experiment")["point_id"]
    reference = runs["experiment"].map(forks).where(~runs["method"].isin(["none", "fork", "watch"]), "")
    return runs.assign(reference_id=reference.fillna(""))


def test_summary_keeps_node_types_apart():
    tables = all_tables()
    runs = with_references(tables["runs"])
    slower = runs.assign(
        hostname="node-b",
        kernel="9.9.9-other",
        node_type=runs["node_type"].str.rsplit(" | ", n=1).str[0] + " | 9.9.9-other",
        writers_s=runs["writers_s"] * 10,
    )
    both = pd.concat([runs, slower], ignore_index=True)
    points = stats.point_table(both)
    comparisons = stats.comparison_table(both, points)
    compared = set(comparisons["node_type"])
    assert compared & set(runs["node_type"]) and compared & set(slower["node_type"])
    text = summary.build(both, points, stats.ratio_table(both, points), None, comparisons)
    assert "Runs from several machines" in text
    for node_type in compared:
        assert f"on {node_type}" in text


def test_a_lever_near_the_floor_is_said_to_have_little_left():
    runs = pd.DataFrame(
        [{"experiment": "e", "point_id": p, "node_type": "n", "status": "ok", "reason": ""} for p in "ar"]
    )
    for key in aggregate.FINGERPRINT:
        runs[key] = "x"
    point = fork_point(point_id="a", label="method=stop", method="stop", start="with_child", writers_over_floor=1.1)
    reference = fork_point(point_id="r", label="method=fork", start="with_child", writers_over_floor=3.0)
    compared = {"experiment": "e", "node_type": "n", "point_id": "a", "label": "method=stop", "reference_id": "r",
                "reference_label": "method=fork", "metric": "writers_s", "objective": True, "ratio": 0.6,
                "ci_low": 0.5, "ci_high": 0.7, "ci_level": 0.9375, "resolved": True, "better": True, "rounds": 5,
                "detectable_below": 0.86, "detectable_above": 1.2, "round_ratios": ""}  # fmt: skip
    text = summary.build(runs, pd.DataFrame([point, reference]), pd.DataFrame(), None, pd.DataFrame([compared]))
    assert "1.1x the floor; within 1.25x of the floor: little left to gain here" in text
    far = {**point.to_dict(), "writers_over_floor": 3.0}
    text = summary.build(runs, pd.DataFrame([far, reference]), pd.DataFrame(), None, pd.DataFrame([compared]))
    assert "3x the floor" in text and "little left to gain" not in text


# ---- how fork scales


def scaling_runs(fork_ms) -> pd.DataFrame:
    """Fork runs over four sizes, two per size, fork_s given by fork_ms(GiB)."""
    rows = []
    for size in (64, 128, 256, 512):
        for repetition in range(2):
            rows.append(
                {"experiment": "s", "point_id": f"p{size}", "node_type": "n", "status": "ok", "method": "fork",
                 "backing": "4k", "size_mib": size, "repetition": repetition,
                 "fork_s": fork_ms(size / 1024) / 1e3, "writers_s_after_snapshot": size / 1024 * 0.3}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_fork_scaling_fits_a_line_in_ms_per_gib_and_says_when_it_is_not_one():
    fits = stats.scaling_table(scaling_runs(lambda gib: 12.0 * gib + 0.5)).set_index("metric")
    fork = fits.loc["fork_s"]
    assert fork["slope_ms_per_gib"] == pytest.approx(12.0) and fork["intercept_ms"] == pytest.approx(0.5)
    assert fork["r2"] == pytest.approx(1.0) and fork["good_fit"] and fork["max_residual_ms"] < 1e-9
    assert (fork["min_mib"], fork["max_mib"], fork["n"]) == (64, 512, 8)
    assert fits.loc["writers_s_after_snapshot", "slope_ms_per_gib"] == pytest.approx(300.0)
    # A curve is not a line: R^2 under the threshold, and the summary says so.
    curved = stats.scaling_table(scaling_runs(lambda gib: 100.0 * (gib - 0.25) ** 2 + (5 if gib > 0.4 else 0)))
    bent = curved.set_index("metric").loc["fork_s"]
    assert bent["r2"] < 0.98 and not bent["good_fit"]
    text = summary.how_fork_scales(curved)
    fork_row = next(line for line in text if "| fork() call |" in line)
    assert ", not a line: bends most at" in fork_row
    assert bent["r2_ceiling"] == pytest.approx(1.0)  # both runs of a size agree
    # Runs that disagree at each size: the spread caps R^2, and the summary says so.
    spread = scaling_runs(lambda gib: 12.0 * gib)
    spread["fork_s"] *= [1.0, 1.6] * 4
    noisy = stats.scaling_table(spread).set_index("metric").loc["fork_s"]
    assert noisy["r2"] <= noisy["r2_ceiling"] < verdict.GOOD_FIT
    noisy_row = next(line for line in summary.how_fork_scales(stats.scaling_table(spread)) if "| fork() call |" in line)
    assert f"not a line: cap {noisy['r2_ceiling']:.3f}" in noisy_row
    # Fewer than three sizes: no line at all.
    assert stats.scaling_table(scaling_runs(lambda gib: gib)[lambda t: t["size_mib"] <= 128]).empty


def test_fork_scaling_fits_one_line_per_setting_that_varies_beside_the_size():
    warm = scaling_runs(lambda gib: 12.0 * gib)
    cold = scaling_runs(lambda gib: 20.0 * gib).assign(point_id=lambda t: t["point_id"] + "c", warm_mib=0)
    fits = stats.scaling_table(pd.concat([warm.assign(warm_mib="auto"), cold], ignore_index=True))
    forks = fits[fits["metric"] == "fork_s"].set_index("line")
    assert sorted(forks.index) == ["warm_mib=0", "warm_mib=auto"]  # the keys that vary, as point labels
    assert forks.loc["warm_mib=auto", "slope_ms_per_gib"] == pytest.approx(12.0)
    assert forks.loc["warm_mib=0", "slope_ms_per_gib"] == pytest.approx(20.0)
    assert forks.loc["warm_mib=0", "r2"] == pytest.approx(1.0)


def test_fork_scaling_figure_draws_the_runs_the_fit_and_the_published_marks():
    runs = scaling_runs(lambda gib: 12.0 * gib + 0.5)
    tables = {"points": pd.DataFrame([{"n": 2}]), "runs": runs, "scaling": stats.scaling_table(runs)}
    figure, ax, empty = plots.render(
        "fork_scaling", {"ratios": pd.DataFrame(), "sharing": pd.DataFrame(), **tables}, "s"
    )
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert empty == "" and any(label.startswith("4k: 12 ms/GiB") for label in labels)
    assert any("Redis latency docs, bare metal" in label for label in labels)
    assert "fork_scaling" in plots.figures_for({"fork"}, False, sizes=3)
    assert "fork_scaling" not in plots.figures_for({"fork"}, False, sizes=2)


def test_no_point_of_the_recorded_default_sweep_lies_below_its_floor():
    # The runs of one README sweep on the development machine (2 CPUs,
    # writers and copiers sized to them), recomputed by the code under test.
    runs = pd.concat(
        [aggregate.read_table(path) for path in sorted((DATA / "default-sweep").glob("*-runs.csv"))], ignore_index=True
    )
    checked = 0
    for _, group in runs.groupby("experiment"):
        points = stats.floor(group, stats.point_table(group))
        snapshots = points[(points["method"] != "none") & points["floor_s"].notna()]
        below = snapshots[snapshots["writers_s_ci_high"] < snapshots["floor_s"]]
        assert below.empty, below[["experiment", "label", "writers_s_ci_high", "floor_s"]]
        checked += len(snapshots)
    assert checked >= 10


# ---- write latency (real runs of every method at 16 MiB, 3 each)


def latency_tables() -> dict[str, pd.DataFrame]:
    return {**tables_of("latency"), "latency": aggregate.read_table(DATA / "latency" / "latency.csv")}


def test_the_latency_figure_is_each_points_ccdf_with_the_baseline_dashed():
    tables = latency_tables()
    assert "write_latency" in plots.figures_for({"none", "fork"}, True, times_writes=True)
    assert "write_latency" not in plots.figures_for({"none", "fork"}, True)
    _, ax, empty = plots.render("write_latency", tables, "latency")
    assert empty == "" and ax.get_xscale() == ax.get_yscale() == "log"
    lines = {line.get_label(): line for line in ax.get_lines()}
    points, latency = tables["points"], tables["latency"]
    assert len(lines) == len(points)
    whole = latency[latency["latency_phase"] == "all"].merge(tables["runs"][["run_id", "point_id"]], on="run_id")
    for _, point in points.iterrows():
        (label,) = [name for name in lines if name.startswith(point["label"])]
        line, mine = lines[label], whole[whole["point_id"] == point["point_id"]]
        y = line.get_ydata()
        assert y[0] == pytest.approx(1.0) and all(a >= b for a, b in zip(y, y[1:], strict=False))
        top = mine[mine["latency_ns"] == mine["latency_ns"].max()]["latency_writes"].sum()
        assert y[-1] == pytest.approx(top / mine["latency_writes"].sum())
        assert max(line.get_xdata()) == pytest.approx(mine["latency_ns"].max() / 1e3)
        assert (line.get_linestyle() == "--") == (point["method"] == "none")


def test_the_summary_states_each_points_tail_and_the_longest_write():
    tables = latency_tables()
    points = tables["points"]
    text = "\n".join(summary.what_a_writer_waits(points, tables["runs"]))
    fork = points[points["method"] == "fork"].iloc[0]
    baseline = points[points["method"] == "none"].iloc[0]

    def cells(point: pd.Series) -> list[str]:
        row = next(line for line in text.splitlines() if f"| {point['label']} |" in line)
        return [cell.strip() for cell in row.split("|")[1:-1]]

    assert cells(fork)[2:4] == ["while the snapshot lived", verdict.duration(fork["write_p99_s_during_snapshot"])]
    assert cells(fork)[5].startswith(verdict.duration(fork["write_max_s"]))
    assert cells(fork)[6].startswith(verdict.duration(baseline["write_p99_s"]))
    # The stop's writers wait for its end: their tail is the writes after
    # it, and the wait is the longest write.
    stop = points[points["method"] == "stop"].iloc[0]
    assert cells(stop)[2:4] == ["after the snapshot ended", verdict.duration(stop["write_p99_s_after_snapshot"])]
    assert cells(stop)[5].startswith(f"{verdict.duration(stop['write_max_s'])}: the first write, held up by the stop")
    # Runs recorded before the clock source was: the cost of timing is not known, and said so.
    assert "do not record their clock source" in text
    runs = tables["runs"].copy()  # one block: adding a column to a fragmented frame warns
    runs["clocksource"] = "acpi_pm"
    assert "Clock source acpi_pm: not read in user space" in "\n".join(summary.what_a_writer_waits(points, runs))
    answer = "\n".join(summary.the_answer(points, pd.DataFrame()))
    assert f"the longest a write waited: {verdict.duration(fork['write_max_s'])}" in answer
    assert f"against {verdict.duration(baseline['write_p99_s'])} without one" in answer


def test_latency_table_keeps_timed_runs_only():
    rows = [
        {"run_id": "e/p/0", "latency_phase": ["all"], "latency_ns": [1000.0], "latency_writes": [3.0]},
        {"run_id": "e/p/1", "latency_phase": ["all"], "latency_ns": [2000.0], "latency_writes": [4.0]},
    ]
    runs = pd.DataFrame({"run_id": ["e/p/0", "e/p/1"], "timed": [True, False]})
    table = aggregate.latency_table(rows, runs)
    assert table.to_dict("records") == [
        {"run_id": "e/p/0", "latency_phase": "all", "latency_ns": 1000.0, "latency_writes": 3.0}
    ]


# ---- the after-exit answer, per kernel x backing x scenario


def kernel_cell(kernel: str, virtual: str, backing: str, start: str, copies: float, faults: float, **more) -> dict:
    return {
        "experiment": "kernels", "point_id": f"{kernel}-{backing}-{start}-{more}", "method": "fork",
        "vm_kernel": "host" if virtual == "none" else kernel[:4], "node_type": f"cpu | 2 | 1 | {kernel} | {virtual}",
        "label": f"{kernel} {backing}", "backing": backing, "start": start, "pattern": "random", "hold": "copy",
        "touched_during": "0.5" if start == "with_child" else "free", "pages": 4096.0, "n": 1,
        "copies_source": "taskstats", "copies_during_snapshot": 1000.0, "writer_minflt_during_snapshot": 1010.0,
        "copies_after_snapshot": copies, "writer_minflt_after_snapshot": faults,
        "reuses_after_snapshot": faults - copies, "splits_after_snapshot": 0.0, "baseline_id": "", **more,
    }  # fmt: skip


KERNEL_CELLS = [
    kernel_cell("6.18.1", "none", "4k", "after_child", 0.0, 4100.0),
    kernel_cell("6.18.1", "none", "mthp-64k", "with_child", 3.0, 1900.0),
    kernel_cell("6.12.9", "tcg", "mthp-64k", "after_child", 4090.0, 4100.0),
    kernel_cell("6.12.9", "tcg", "mthp-64k", "with_child", 1880.0, 1900.0),
    kernel_cell("6.12.9", "tcg", "4k", "with_child", 0.0, 1900.0),
]


def after_exit_line(points: pd.DataFrame) -> str:
    (line,) = summary.after_exit_answer(after_exit.cells(points))
    return line


def test_the_after_exit_answer_holds_each_kernel_and_backing_measured():
    points = pd.DataFrame(KERNEL_CELLS)
    line = after_exit_line(points)
    # One sentence per kernel: what copies there; a kernel where nothing copies is said to be not copying.
    sentences = line.split("per kernel measured: ", 1)[1].split(". ")
    assert [sentence.split(":")[0] for sentence in sentences] == ["6.12 in a VM", "6.18 here"]
    assert sentences[1].startswith(f"6.18 here: {verdict.NOT_COPYING_WORD} on every cell measured")
    # 6.12: mthp-64k copies in each of its scenarios (named once); 4k copies in none (not named).
    assert sentences[0] == f"6.12 in a VM: {verdict.COPYING_WORD} on mthp-64k"
    for cell in KERNEL_CELLS:
        word = verdict.copying_word(cell["copies_after_snapshot"], cell["writer_minflt_after_snapshot"])
        named = f"on {cell['backing']}" in sentences[0] and cell["node_type"].split(" | ")[3].startswith("6.12")
        assert named == (word == verdict.COPYING_WORD), cell
    # A backing whose scenarios differ names the scenario that copies.
    mixed = pd.DataFrame([*KERNEL_CELLS, kernel_cell("6.12.9", "tcg", "4k", "after_child", 4000.0, 4100.0)])
    scenario = after_exit.scenario_of(pd.Series(KERNEL_CELLS[2]))
    assert f"{verdict.COPYING_WORD} on 4k, {scenario}; and on mthp-64k." in after_exit_line(mixed)
    # The counts behind each word are in After the exit, cell by cell.
    table = "\n".join(summary.by_kernel(points))
    for cell in KERNEL_CELLS:
        assert f"{cell['copies_after_snapshot']:,.0f} of {cell['writer_minflt_after_snapshot']:,.0f}" in table


def test_a_kernel_or_backing_not_measured_gets_no_sentence():
    points = pd.DataFrame(KERNEL_CELLS[:2])  # this machine only
    text = "\n".join(summary.build(runs_of(points), points, pd.DataFrame()).splitlines()[:12])
    assert "6.12" not in text
    assert "copying (4,090" not in text


def test_copies_not_counted_after_the_exit_are_said_so_never_zero():
    points = pd.DataFrame([kernel_cell("6.1.0", "tcg", "thp", "after_child", float("nan"), 30.0)])
    line = after_exit_line(points)
    assert f"6.1 in a VM: {verdict.NOT_COUNTED_WORD} on thp" in line and "0 of" not in line
    table = "\n".join(summary.by_kernel(points))
    assert "not counted" in table and "taskstats" in table


def test_the_after_exit_cells_that_copy_are_those_the_verdict_calls_copying_or_partly():
    points = pd.DataFrame(
        [
            kernel_cell("6.12.9", "tcg", "4k", "after_child", 0.0, 4100.0),
            kernel_cell("6.12.9", "tcg", "mthp-64k", "after_child", 4090.0, 4100.0),
            kernel_cell("6.12.9", "tcg", "thp", "after_child", 1000.0, 4100.0),
            kernel_cell("6.12.9", "tcg", "mthp-16k", "after_child", float("nan"), 4100.0),
        ]
    )
    table = after_exit.cells(points)
    assert dict(zip(table["backing"], table["word"], strict=True)) == {
        "4k": verdict.NOT_COPYING_WORD,
        "mthp-16k": verdict.NOT_COUNTED_WORD,
        "mthp-64k": verdict.COPYING_WORD,
        "thp": verdict.PARTLY_COPYING_WORD,
    }
    assert sorted(after_exit.copying_cells(table)["backing"]) == ["mthp-64k", "thp"]


def test_where_the_after_exit_writes_copy_the_backings_measured_there_are_ranked():
    text = "\n".join(summary.by_kernel(pd.DataFrame(KERNEL_CELLS)))
    ranking = next(line for line in text.splitlines() if line.startswith("- 6.12 in a VM") and "random" in line)
    assert ranking.index("4k (0 of 1,900") < ranking.index("then mthp-64k (1,880 of 1,900")
    # Nothing copies after the exit on 6.18.1: no ranking there.
    assert not [line for line in text.splitlines() if line.startswith("- 6.18 here")]


def runs_of(points: pd.DataFrame) -> pd.DataFrame:
    runs = points[["experiment", "point_id", "node_type"]].assign(status="ok", reason="")
    for key in aggregate.FINGERPRINT:
        runs[key] = "x"
    return runs
