"""A server's answer per kernel: watch points whose server reported its
own snapshot (server_ keys, a report_command), per kernel and setting,
whether the server copies after its snapshot ends, beside its own COW count,
fork time and SET latency; and what its THP lever (disable-thp) does there.
Every sentence reads one cell's points only."""

from __future__ import annotations

import shlex

import pandas as pd

from cowsnap.analyse import after_exit, verdict
from cowsnap.analyse.summary.kernels import kernel_names
from cowsnap.analyse.summary.programs import program_name
from cowsnap.analyse.summary.words import copying_words, reason
from cowsnap.analyse.text import fmt, fmt_count, section, table

# A server's COW count is in bytes, the watch's in pages of page_bytes; a
# record from before page_bytes was recorded was measured on x86-64, in 4 KiB pages.
EARLIER_PAGE_BYTES = 4096
# What would tell the lever's cost where the cells ran under software emulation.
EMULATED_COST = "software emulation gives no times; a KVM guest or a machine booting this kernel would"
THP_LEVER = "--disable-thp"  # Redis's and Valkey's own THP setting (PR_SET_THP_DISABLE)


def servers(points: pd.DataFrame) -> pd.DataFrame:
    """The watch points of a server that reported its snapshot."""
    if points.empty or "server_rdb_last_cow_size" not in points:
        return points.iloc[0:0]
    return points[(points["method"] == "watch") & points["server_rdb_last_cow_size"].notna()]


def setting(row: pd.Series, commands: list[str]) -> str:
    """The program and what sets this cell apart: the words of its command
    no other command of the cells has, and the system's THP settings."""
    words = shlex.split(str(row["watch_command"]))
    others = [shlex.split(str(command)) for command in commands if command != row["watch_command"]]
    differs = [i for i in range(1, len(words)) if any(i >= len(o) or o[i] != words[i] for o in others)]
    # An option's value is named with its option: --disable-thp no.
    shown = sorted({*differs, *(i - 1 for i in differs if words[i - 1].startswith("-"))})
    parts = [program_name(row), *(words[i] for i in shown)]
    if row.get("thp_mode", "keep") != "keep":
        parts.append(f"THP {row['thp_mode']}")
    if row.get("mthp", "keep") != "keep":
        parts.append(f"{row['mthp']} alone")
    return " ".join(parts)


def agreement(row: pd.Series) -> str:
    """The watch's copies over the server's own count, in pages."""
    page_bytes = row.get("page_bytes")
    own = row["server_rdb_last_cow_size"] / (EARLIER_PAGE_BYTES if pd.isna(page_bytes) else page_bytes)
    counted = row.get("copies_during_snapshot", float("nan")) + row.get("child_wpcopy_count", 0.0)
    return f"{fmt(counted / own)}x of {fmt_count(own)}" if own > 0 and not pd.isna(counted) else "n/a"


def timed(row: pd.Series) -> bool:
    """Whether a cell's times are a machine's: not measured in a VM."""
    return str(row.get("virtualized", "none")) == "none"


def lever_sentence(cells: pd.DataFrame) -> list[str]:
    """Per kernel and program measured both ways: what disable-thp changes,
    from those two cells (times only where they are not emulated)."""
    lines = []
    for (kernel, program), group in cells.groupby(["kernel", "program"], sort=False):
        plain = [row for _, row in group.iterrows() if row["mthp"] == "keep"]
        on = next((row for row in plain if f"{THP_LEVER} no" in str(row["watch_command"])), None)
        off = next((row for row in plain if f"{THP_LEVER} yes" in str(row["watch_command"])), None)
        if on is None or off is None:
            continue
        uncounted = next((row for row in (off, on) if pd.isna(row["copies_after_snapshot"])), None)
        if uncounted is not None:  # no verdict from a count not taken
            said = [f"after the exit copies not counted: {reason(uncounted['copies_source'])}"]
        else:
            with_it, without = (
                verdict.copying_word(row["copies_after_snapshot"], row["writer_minflt_after_snapshot"])
                for row in (off, on)
            )
            changes = "it changes nothing there" if with_it == without else "it is what keeps those writes from copying"
            said = [f"after the exit {with_it} with it, {without} without: {changes}"]
        if timed(on):
            said.append(
                f"its fork {off['server_latest_fork_usec']:,.0f} µs against {on['server_latest_fork_usec']:,.0f} µs; "
                f"SET p99.9 {fmt(off['server_set_p999_us'])} µs against {fmt(on['server_set_p999_us'])} µs"
            )
        else:
            said.append(f"its cost not measured: {EMULATED_COST}")
        lines.append(f"- {kernel}, {program} {THP_LEVER} yes against no: " + "; ".join(said) + ".")
    return lines


def servers_per_kernel(points: pd.DataFrame) -> list[str]:
    """The servers' table per kernel and setting, and their THP lever."""
    rows = servers(points)
    if rows.empty:
        return []
    commands = list(dict.fromkeys(rows["watch_command"].astype(str)))
    places = [after_exit.kernel_and_place(node_type) for node_type in rows["node_type"]]
    order = sorted(range(len(rows)), key=lambda i: after_exit.kernel_order(*places[i]))
    rows, places = rows.iloc[order], [places[i] for i in order]
    names = kernel_names(pd.DataFrame(places, columns=["kernel", "where"]))
    cells = rows.copy().assign(
        kernel=[names[place] for place in places],
        program=rows.apply(program_name, axis=1),
        mthp=rows.get("mthp", pd.Series("keep", index=rows.index)).fillna("keep"),
    )
    lines = section(
        "Servers, per kernel",
        "A server's BGSAVE under its load (watch points with a report_command): the parent's copies of its "
        "minor faults while the child lived and after it exited (copies_during_snapshot, copies_after_snapshot, "
        "writer_minflt_<phase>), the watch's copies over the server's own count (rdb_last_cow_size in "
        "pages), the server's fork time (latest_fork_usec) and SET p99.9 on its side (latencystats, from the "
        "snapshot on); a VM under software emulation gives counts, not times.",
    )
    body = []
    for _, row in cells.iterrows():
        body.append(
            [
                row["kernel"],
                setting(row, commands),
                copying_words(row.get("copies_during_snapshot"), row.get("writer_minflt_during_snapshot"),
                              row.get("copies_source"), "faults"),
                copying_words(row.get("copies_after_snapshot"), row.get("writer_minflt_after_snapshot"),
                              row.get("copies_source"), "faults"),
                agreement(row),
                f"{row['server_latest_fork_usec']:,.0f} µs" if timed(row) else "n/a",
                f"{fmt(row['server_set_p999_us'])} µs" if timed(row) else "n/a",
            ]
        )  # fmt: skip
    header = ["kernel", "server, setting", "while the child lived", "after the exit", "watch / server's COW",
              "fork", "SET p99.9"]  # fmt: skip
    lines += table(header, body)
    lever = lever_sentence(cells)
    if lever:
        lines += ["", f"Redis's THP lever ({THP_LEVER} yes, its default: PR_SET_THP_DISABLE), per kernel:", ""]
        lines += lever
    return lines + [""]
