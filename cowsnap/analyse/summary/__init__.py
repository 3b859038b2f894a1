"""results/summary.md: the answer to the seed's two questions, for the
machine the sweep ran on. Is it copying? How do I avoid it?

One module per section, each reading the tables (points.csv, ratios.csv,
comparisons.csv, scaling.csv) and returning its lines; build() puts them
in order. Every number comes from the statistics pass and every verdict
word is chosen by a threshold of cowsnap.analyse.verdict from those
numbers; nothing is typed in. No sentence ranks two points by whether
their intervals overlap: levers are compared with their reference round
by round (summary.avoid).
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pandas as pd

from cowsnap.analyse import after_exit, labels
from cowsnap.analyse.aggregate import FINGERPRINT, virtualized
from cowsnap.analyse.summary import avoid, servers
from cowsnap.analyse.summary.answer import the_answer
from cowsnap.analyse.summary.copying import is_it_copying, the_seed
from cowsnap.analyse.summary.host import what_the_host_adds
from cowsnap.analyse.summary.kernels import after_exit_answer, by_kernel
from cowsnap.analyse.summary.latency import what_a_writer_waits
from cowsnap.analyse.summary.model import at_a_larger_size
from cowsnap.analyse.summary.noise import noise, the_floor
from cowsnap.analyse.summary.programs import watch_lever, watch_points
from cowsnap.analyse.summary.scaling import how_fork_scales
from cowsnap.analyse.summary.words import copying_words, fmt_interval
from cowsnap.analyse.text import fmt

# What tests and callers use besides build(): each section, and the words they share.
__all__ = [
    "after_exit_answer", "build", "by_kernel", "copying_words", "fmt", "fmt_interval", "how_fork_scales",
    "the_answer", "watch_lever", "watch_points", "what_a_writer_waits",
]  # fmt: skip


# The page on reading the summary, in the checkout the package runs from.
GUIDE = Path(__file__).resolve().parents[3] / "docs" / "reading-the-summary.md"


def guide_link(summary_dir: Path) -> str:
    """The reading guide as a link that resolves from the folder the summary is written to."""
    return Path(os.path.relpath(GUIDE, Path(summary_dir).resolve())).as_posix()


def build(
    runs: pd.DataFrame,
    points: pd.DataFrame,
    ratios: pd.DataFrame,
    scaling: pd.DataFrame | None = None,
    comparisons: pd.DataFrame | None = None,
    models: pd.DataFrame | None = None,
    guide: str = "../docs/reading-the-summary.md",
) -> str:
    """The summary's text; `guide`: the reading guide's link from where it is written (guide_link)."""
    lines = [f"# What the sweep found: [how to read it]({guide})", ""]
    if runs.empty:
        return "\n".join(lines + ["Nothing ran: the sweep has no runs.", ""])
    ratios = ratios if not ratios.empty else pd.DataFrame(columns=["metric", "baseline_method"])
    comparisons = comparisons if comparisons is not None else pd.DataFrame()
    runs = runs.copy()  # one block: a column added to a fragmented frame warns
    runs["virtualized"] = virtualized(runs)
    ran = runs[runs["status"] == "ok"] if "status" in runs else runs
    if not points.empty:
        lines += the_answer(points, comparisons, scaling)
    lines += ["## Machine", ""]
    for _, machine in ran.drop_duplicates(FINGERPRINT)[FINGERPRINT].iterrows():
        lines.append(
            f"- {machine['hostname']}: {machine['cpu_model']}, {machine['online_cpus']} CPUs, "
            f"{machine['numa_nodes']} NUMA node(s), Linux {machine['kernel']}"
            + (f", in a VM ({machine['virtualized']})" if machine.get("virtualized", "none") != "none" else "")
        )
    if ran.drop_duplicates(FINGERPRINT).shape[0] > 1:
        lines.append("- **Runs from several machines: every number below is for one node type, named with it.**")
    lines.append("")
    if points.empty:
        lines += ["Nothing ran: every run was skipped or failed.", ""]
    else:
        # Experiments with a section of their own (a line over sizes, a cell per kernel) are told there.
        in_vms = runs.loc[runs["vm_kernel"].fillna("host") != "host", "experiment"] if "vm_kernel" in runs else []
        elsewhere = {
            **dict.fromkeys(
                scaling["experiment"] if scaling is not None and not scaling.empty else [], "How fork scales"
            ),
            **dict.fromkeys([*after_exit.kernel_experiments(points), *in_vms], "After the exit"),
            **dict.fromkeys(models["experiment"] if models is not None and "experiment" in models else [],
                            "At a larger size"),
        }  # fmt: skip
        lines += is_it_copying(points, elsewhere)
        served = servers.servers(points)  # a server that reported its snapshot: told per kernel
        lines += watch_points(points.drop(served.index), comparisons)
        lines += servers.servers_per_kernel(points)
        lines += by_kernel(points)
        lines += what_the_host_adds(points, ratios)
        lines += the_seed(points, ratios)
        lines += avoid.how_to_avoid(points, comparisons, ratios)
        lines += what_a_writer_waits(points, ran, elsewhere)
        lines += how_fork_scales(scaling)
        lines += at_a_larger_size(models)
        lines += noise(points)
        lines += the_floor(points)
    lines += ["## Points not measured", ""]
    names = labels.point_labels(runs)
    missing = runs[runs["status"] != "ok"].drop_duplicates([*labels.POINT, "status", "reason"])
    # One line per experiment and reason: a point by its label, several by their count.
    for (experiment, status, why), group in missing.groupby(["experiment", "status", "reason"], sort=False):
        name = names[tuple(group.iloc[0][labels.POINT])] if len(group) == 1 else f"{len(group)} points"
        lines.append(f"- {experiment}: {name}: {status}: {why}")
    if missing.empty:
        lines.append("- none: every point ran")
    return "\n".join(line for text in lines for line in wrapped(text)) + "\n"


# A paragraph or list item longer than LONG is wrapped at WRAP (Markdown joins the lines again);
# tables are not, and a line of the answer stays one line.
LONG = 300
WRAP = 100


def wrapped(text: str) -> list[str]:
    """A line of the summary over LONG characters as lines of at most WRAP,
    a list item's continuation indented under its text; a table row, a
    heading and a shorter line as they are."""
    if len(text) <= LONG or text.startswith(("|", "#")):
        return [text]
    marker = re.match(r"\s*(?:[-*]|\d+\.)\s+", text)
    indent = " " * (marker.end() if marker else 0)
    return textwrap.wrap(text, WRAP, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
