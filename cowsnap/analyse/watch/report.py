"""What `cowsnap watch` shows: the live table, the verdict in sentences
(cowsnap.analyse.verdict's rules) and the timeline figure. Counter names
are the record's (cowsnap.analyse.glossary)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from cowsnap.analyse import verdict
from cowsnap.analyse.watch import levers
from cowsnap.measure import environment
from cowsnap.measure.watch import proc
from cowsnap.measure.watch.tracker import COUNTERS, PHASE_WORDS, Watch

SHOWN = ("wpcopy_count", "wpcopy_delay_s", "minflt", "majflt", "utime_s", "stime_s", "cpu_delay_s", "shared_pages")
HEADER = ("pid", "comm", "role", "state", *SHOWN)
WIDTH = 15


def _fmt(value, unit: str = "") -> str:
    if verdict.is_missing(value):
        return "-"
    return f"{value:,.3f}{unit}" if unit else f"{value:,.0f}"


def _cell(key: str, row: dict) -> str:
    # Copies of a process some of whose faulting threads have no delay
    # accounting are not shown: taskstats would say 0 for theirs.
    if key == "wpcopy_count" and (math.isnan(row[key]) or row.get("unaccounted_minflt", 0.0) > 0):
        return "not counted"
    if key in ("minflt", "majflt"):
        return f"+{_fmt(row[key])}"
    return _fmt(row[key], "s" if key.endswith("_s") else "")


def table_lines(watch: Watch, rows: list[dict]) -> list[str]:
    """The live table: one line per process this interval, then the system."""
    system = next(r for r in rows if r["scope"] == "system-wide")
    lines = [
        f"cowsnap watch: pid {watch.root}, {system['t_end_s']:.1f} s, {PHASE_WORDS[system['phase']]}; "
        "counts this interval",
        "".join(f"{h:>{WIDTH}}" for h in HEADER),
    ]
    for row in rows:
        if row["scope"] != "process":
            continue
        cells = [str(row["pid"]), row["comm"][: WIDTH - 1], row["role"], "alive" if row["alive"] else "exited"]
        cells += [_cell(key, row) for key in SHOWN]
        lines.append("".join(f"{c:>{WIDTH}}" for c in cells))
    lines.append(
        "system-wide: " + ", ".join(f"{k} +{_fmt(system.get(k))}" for k in proc.VMSTAT_KEYS) + " (all programs)"
    )
    return lines


def plain_lines(rows: list[dict]) -> list[str]:
    """One line per process per interval, then one system-wide line."""
    out = []
    for row in rows:
        head = f"{row['t_end_s']:8.2f}s"
        if row["scope"] == "system-wide":
            out.append(f"{head} system-wide " + " ".join(f"{k} +{_fmt(row.get(k))}" for k in proc.VMSTAT_KEYS))
            continue
        cells = " ".join(f"{key} {_cell(key, row)}".replace("not counted", "not-counted") for key in SHOWN)
        out.append(
            f"{head} pid {row['pid']} ({row['comm']}) {row['role']} {'alive' if row['alive'] else 'exited'} "
            f"phase {row['phase']} {cells}"
        )
    return out


def role_words(role: str, count: int) -> str:
    """'2 workers', '1 snapshot child'."""
    plural = {"snapshot child": "snapshot children"}.get(role, role + "s")
    return f"{count} {role if count == 1 else plural}"


def how_to_count(why: str, root: int) -> str:
    """What would let the watch count the copies it could not, for this reason."""
    if environment.SCHED_CLOCK_UNSTABLE in why:
        return "a kernel whose sched_clock is stable (its log says 'sched_clock: Marking stable')"
    return verdict.count_command(root)


def phase_lines(
    name: str, phase: dict, root: int, by_role: dict[str, tuple[int, float]] | None = None, program_exited=False
) -> list[str]:
    """The verdict on one phase, each number computed from the phase.
    by_role: the children's (count, copies in this phase) per child role;
    program_exited: the watched program exited in this phase."""
    by_role = by_role or {}
    words, faults, reuses = PHASE_WORDS[name], phase["minflt"], phase["pgreuse"]
    copies, source, note = verdict.best_copies(phase)
    head = f"{words} ({phase['seconds']:.1f} s)"
    if math.isnan(copies):
        line = (
            f"{head}: copies not counted: {note}; {faults:,.0f} minor faults, system-wide pgreuse "
            f"+{reuses:,.0f} (other programs count there too), so faults less reuses: {faults - reuses:,.0f} "
            f"(an estimate, not a count). To count them: {how_to_count(note, root)}."
        )
    else:
        word = verdict.copying_word(copies, faults)
        line = (
            f"{head}: {word}: {copies:,.0f} pages copied ({verdict.mib(copies, proc.PAGE_BYTES)}, "
            f"{verdict.copy_share(copies, faults):.0%} of {faults:,.0f} minor faults; counted by {source})"
        )
        if source == "taskstats":
            cpu = phase["utime_s"] + phase["stime_s"]
            line += f", {phase['wpcopy_delay_s']:.3g} s in the copy fault path"
            if cpu > 0:
                line += f" ({100 * phase['wpcopy_delay_s'] / cpu:.2g}% of their {cpu:.3g} s of CPU time)"
            if phase["child_wpcopy_count"] > 0:
                line += f"; {phase['child_wpcopy_count']:,.0f} of them by the children"
                shown = [
                    f"{role_words(role, count)} {copies:,.0f}"
                    for role, (count, copies) in by_role.items()
                    if not math.isnan(copies) and copies > 0
                ]
                if shown:
                    line += f" ({', '.join(shown)})"
        line += f"; system-wide pgreuse +{reuses:,.0f}"
        if note:
            line += f"; {note}"
    if program_exited:
        line += "; the program exited in this phase, so its faults include its own teardown"
    lines = [line + "."]
    # The child lever is for snapshot children: a worker's copies have levers of their own (worker_lines).
    workers = sum(copies for role, (_, copies) in by_role.items() if role != "snapshot child" and copies > 0)
    child_copies = phase["child_wpcopy_count"] - workers if workers else phase["child_wpcopy_count"]
    # The after-exit levers are a snapshot's: a pool's parent faults after its workers for reasons of its own.
    snapshot = not by_role or "snapshot child" in by_role
    lever = verdict.lever(name, copies - workers, child_copies, reuses, faults) if snapshot else ""
    if lever:
        lines.append("  lever: " + lever)
    return lines


def worker_lines(result: dict) -> list[str]:
    """What a pool's workers copied, against what each shared at fork, and
    the levers measured for them: for an interpreter whose reads write, the
    examples' (levers.py); otherwise the benchmark's for a child that writes."""
    workers = result.get("roles", {}).get("worker")
    if not workers:
        return []
    memory = result["memory"]
    anon = memory["anon_pages_at_fork"]
    words = verdict.worker_words(
        workers["count"], workers["wpcopy_count"], anon, workers["source"], workers["private_dirty_pages"],
        workers["forked_by_the_program"],
    )  # fmt: skip
    lines = ["workers: " + (words or f"{role_words('worker', workers['count'])}, copies not counted") + "."]
    # Levers where the workers copied most of what they shared; a few pages of the interpreter's own are no lever's.
    if math.isnan(workers["wpcopy_count"]) or workers["wpcopy_count"] < verdict.MOSTLY * workers["count"] * anon:
        return lines
    comm = result["processes"].get(result["root"], {}).get("comm", "")
    if verdict.reads_write(comm):
        lines.append(
            f"  levers ({comm}: reading an object writes its reference count, so workers copy what they read):"
        )
        lines += [f"    {line}" for line in levers.lever_lines(levers.read())]
    else:
        lines.append(f"  lever: {verdict.CHILD_WRITES.replace('the child writes', 'the workers write')}.")
    return lines


def verdict_lines(result: dict) -> list[str]:
    """The watch's answer: per phase, then per child role what it cost in
    memory: a snapshot's copies, workers' copies, and their levers."""
    lines = []
    roles = result.get("roles", {})
    root_end = result["processes"][result["root"]]["end_s"] if result["root"] in result["processes"] else None
    for name, phase in result["phases"].items():
        by_role = {role: (entry["count"], entry["phases"].get(name, 0.0)) for role, entry in roles.items()}
        exited = name == "after_snapshot" and root_end is not None
        lines += phase_lines(name, phase, result["root"], by_role, exited)
    lines += worker_lines(result)
    during = result["phases"].get("during_snapshot")
    if during is not None and (not roles or "snapshot child" in roles):
        copies, source, _ = verdict.best_copies(during)
        others = sum(
            entry["phases"].get("during_snapshot", 0.0) for role, entry in roles.items() if role != "snapshot child"
        )
        copies -= others if not math.isnan(others) else 0.0
        memory = result["memory"]
        words = verdict.memory_words(copies, memory["anon_pages_at_fork"], source, proc.PAGE_BYTES)
        if words:
            peak = memory["peak_child_private_pages"]
            if not verdict.is_missing(peak):
                words += f" (the children's private memory peaked at {verdict.mib(peak, proc.PAGE_BYTES)})"
            lines.append("memory: " + words + ".")
    return lines


def thread_lines(result: dict, top: int = 5) -> list[str]:
    """For a process with several threads: the threads that copied most."""
    lines = []
    for pid, process in result["processes"].items():
        copying = [(tid, t) for tid, t in process["threads"].items() if t.get("wpcopy_count", 0) > 0]
        if len(process["threads"]) < 2 or not copying:
            continue
        copying.sort(key=lambda item: -item[1]["wpcopy_count"])
        shown = ", ".join(
            f"{tid} ({t['comm']}) {t['wpcopy_count']:,.0f} copies in {t.get('wpcopy_delay_s', 0):.3g} s"
            for tid, t in copying[:top]
        )
        lines.append(f"threads of {pid} ({process['comm']}) that copied most: {shown}")
    return lines


def end_lines(result: dict, sharing: bool) -> list[str]:
    """What the watch prints when it ends."""
    out = [
        "",
        f"cowsnap watch: verdict for pid {result['root']} over {result['duration_s']:.1f} s "
        f"(the watch itself used {result['watch_cpu_s']:.2f} s of CPU, its start included)"
        + (f"; stopped by {result['ended_by']}" if result.get("ended_by") else ""),
    ]
    out += verdict_lines(result)
    out += thread_lines(result)
    for key, how in result["counted"].items():
        if how.startswith("not counted") and (key != "shared_pages" or sharing):
            out.append(f"{key}: {how}")
    cost = result["memory_cost"]
    if cost["samples"]:
        out.append(
            f"children's memory: {cost['samples']} smaps_rollup readings took {cost['seconds'] * 1e3:.1f} ms of the "
            "watch's time"
        )
    cost = result["sharing_cost"]
    if cost["samples"]:
        out.append(
            f"sharing: {cost['samples']} pagemap samples of {cost['pages']:,} pages took "
            f"{cost['seconds'] * 1e3:.1f} ms of the watch's time ({cost['seconds'] / cost['samples'] * 1e3:.2f} ms "
            "each, under the watched process's mmap read lock)"
        )
    return out


class Display:
    def __init__(self, watch: Watch, stream=None):
        self.watch = watch
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.drawn = 0
        self.events_shown = 0

    def begin(self) -> None:
        """Says what is watched and what cannot be counted, before the first interval."""
        root = self.watch.processes[self.watch.root]
        self.stream.write(f"cowsnap watch: watching pid {root.pid} ({root.comm}) and its children\n")
        for key in COUNTERS:
            if self.watch.uncounted(key):
                self.stream.write(f"cowsnap watch: {key}: {self.watch.uncounted(key)}\n")
        unaccounted = [t for t in root.threads.values() if not t.verified]
        if unaccounted and not self.watch.uncounted("wpcopy_count"):
            self.stream.write(
                f"cowsnap watch: {len(unaccounted)} of {len(root.threads)} threads of pid {root.pid} show no delay "
                "accounting (started while kernel.task_delayacct was 0?): their copies are counted from the "
                "snapshot children's private dirty pages instead\n"
            )
        if "exits" in self.watch.reasons:
            self.stream.write(f"cowsnap watch: children's exits: {self.watch.reasons['exits']}\n")
        self.stream.flush()

    def show(self, rows: list[dict]) -> None:
        if self.tty:
            lines = table_lines(self.watch, rows)
            if self.drawn:
                self.stream.write(f"\x1b[{self.drawn}A\x1b[J")
            self.stream.write("\n".join(lines) + "\n")
            self.drawn = len(lines)
        else:
            self.show_events()
            self.stream.write("\n".join(plain_lines(rows)) + "\n")
        self.stream.flush()

    def show_events(self) -> None:
        for event in self.watch.events[self.events_shown :]:
            self.stream.write(
                f"{event['t_s']:8.2f}s {event['role']} {event['pid']} ({event['comm']}) {event['event']}\n"
            )
        self.events_shown = len(self.watch.events)
        self.stream.flush()

    def end(self, result: dict) -> None:
        self.drawn = 0
        self.stream.write("\n".join(end_lines(result, self.watch.sharing)) + "\n")
        self.stream.flush()


def draw_timeline(table, watch: Watch, stem: Path) -> list[Path]:
    """Copies (per process), the children's private dirty pages and the
    system's reuses per interval, children's lifetimes as shaded spans."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    processes = table[table["scope"] == "process"]
    label = " pid " + processes["pid"].astype(int).astype(str) + " (" + processes["comm"] + ")"
    copies = processes.assign(what="wpcopy_count," + label, count=processes["wpcopy_count"])
    private = processes.assign(what="private_dirty_pages," + label, count=processes["private_dirty_pages"])
    system = table[table["scope"] == "system-wide"]
    reuses = system.assign(what="pgreuse (system-wide)", count=system["pgreuse"])
    data = pd.concat([copies, private, reuses])[["t_end_s", "what", "count"]].dropna()
    figure, ax = plt.subplots(figsize=(8, 4.2))
    if not data.empty:
        sns.lineplot(data=data, x="t_end_s", y="count", hue="what", marker="o", ax=ax)
    for i, (pid, comm, start, end) in enumerate(watch.lifetimes()):
        ax.axvspan(
            start,
            end if end is not None else table["t_end_s"].max(),
            alpha=0.15,
            color="C3",
            label="a child lived" if i == 0 else None,
        )
        ax.annotate(
            f"{pid} ({comm}, {watch.child_role(watch.processes[pid])})",
            (start, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            va="top",
            rotation=90,
        )
    ax.set_xlabel("seconds since the watch started (end of each interval)")
    ax.set_ylabel("pages per interval")
    ax.set_title(f"cowsnap watch, pid {watch.root}: copies and reuses per interval")
    ax.legend(fontsize=7)
    figure.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        figure.savefig(path)
    plt.close(figure)
    return paths
