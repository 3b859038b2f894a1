"""Expand a validated config into runs: one per point and repetition."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import random
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from cowsnap.plan import commands, threads
from cowsnap.plan import config as cowsnap_config
from cowsnap.plan import point as plan_point
from cowsnap.plan.config import ConfigError
from cowsnap.plan.methods import BENCHMARK, BENCHMARK_KEYS, COMMAND_KEYS, COPYING, WATCH_KEYS, taking
from cowsnap.plan.point import PAGE_KIB, Point, duration, parse_list

MAX_RUNS = 20_000  # runs of one config, over all experiments
MAX_NODE = 1023  # Linux numbers NUMA nodes below 1024


class Other(tuple):
    """Every value but these (an APPLIES need such as "any kernel but host")."""

    def __contains__(self, value) -> bool:
        return not tuple.__contains__(self, value)

    def __str__(self) -> str:
        return "other than " + " or ".join(map(str, tuple(self)))


NOT_MAP = ("none", "write-after-exit", "write-after-release")
# Benchmark keys that apply to a watch point too.
WATCH_ALSO = ("method", "thp_mode", "delayacct", "timeout_s", *plan_point.VM_KEYS)
# Which point keys apply to which points, the one table of it: a key (or one
# value of a key, as (key, value)) -> the methods it applies to (from the
# methods' table, plan/methods.py), and the values other keys must have. A
# key that does not apply to a point is set to its default before the
# point's id is computed, so one measurement has one id; a value given that
# applies to none of the points it was given for is refused. Entries are
# applied in this order (later ones see earlier results): the keys some
# methods take or that need other values first, then every other key.
NARROWER: dict = {
    "release": {},
    "exit": {},
    "hold": {},
    "start": {},
    "touched_during": {"start": ("with_child",), "hold": ("copy",)},
    ("populate", "write-after-exit"): {},
    ("populate", "write-after-release"): {},
    "dest": {},
    "dontfork": {"dest": ("zeroed",)},
    "check_copy": {},
    "inject": {"check_copy": (True,)},  # a wrong snapshot that nothing checks would show nothing
    "alloc": {"backing": ("4k", "thp"), "populate": NOT_MAP},
    "hugetlb_pool": {"backing": tuple(PAGE_KIB)},
    "numa_copiers": {},
    "sharing_interval_ms": {},
    "timeout_s": {},
    "vm_nodes": {"vm_kernel": Other(("host",))},
    "vm_cpus": {"vm_kernel": Other(("host",))},
    "vm_memory_mib": {"vm_kernel": Other(("host",))},
}
# Last, so a value that applies to a few methods is refused naming them.
CONDITIONS = {**NARROWER, **{key: {} for key in (*BENCHMARK_KEYS, *WATCH_KEYS) if key not in NARROWER}}
APPLIES: dict = {
    key: (taking(key if isinstance(key, str) else "=".join(key)), others) for key, others in CONDITIONS.items()
}


# Point keys added after records existed, with the default that leaves a
# point's id unchanged (so finished runs are not redone).
LATER_KEYS = {
    "passes": 1,
    "write_s": 0,
    "write_rate": 0,
    "touched_during": "free",
    "warm_mib": 0,
    "check_copy": True,
    "mthp": "keep",
    "report_command": "",
    "vm_cpus": "auto",
    "vm_memory_mib": "auto",
}


@dataclass(frozen=True)
class Run:
    experiment: str
    point_id: str
    repetition: int
    point: dict
    baseline_id: str = ""  # the point this one is compared with ("" without one)
    position: int = 0  # place in the shuffled schedule

    @property
    def run_id(self) -> str:
        return f"{self.experiment}/{self.point_id}/{self.repetition}"


def point_id(point: dict) -> str:
    """Stable name of a point: a hash of all its settings (the VM keys left
    out when the point runs on the host, so host points keep the ids they
    had before those keys existed)."""
    if point.get("vm_kernel", "host") == "host":
        point = {k: v for k, v in point.items() if k not in plan_point.VM_KEYS}
    # Keys a point did not have before they existed leave its id as it was at their default.
    point = {k: v for k, v in point.items() if k not in LATER_KEYS or v != LATER_KEYS[k]}
    canonical = json.dumps(point, sort_keys=True, separators=(",", ":"))
    return "p" + hashlib.sha256(canonical.encode()).hexdigest()[:10]


def _applies(point: dict, methods: tuple, needs: dict) -> bool:
    return point["method"] in methods and all(point[key] in values for key, values in needs.items())


def _condition(methods: tuple, needs: dict) -> str:
    every = set(methods) == set(cowsnap_config.point_schema()["method"]["enum"])
    text = "every method" if every else "method " + " or ".join(methods)
    for key, values in needs.items():
        text += f" with {key} " + (str(values) if isinstance(values, Other) else " or ".join(map(str, values)))
    return text


def commands_as_text(point: dict) -> dict:
    """The point with each command given as an argv list written as one
    command line (shlex.join), so a command has one form and one id."""
    return {k: shlex.join(v) if k in COMMAND_KEYS and isinstance(v, list) else v for k, v in point.items()}


def resolve(settings: dict, smoke_mib: int = 0, cpus: int | None = None) -> Point:
    """The one resolution of a point, made where it is planned: the
    defaults for keys not given, the keys that do not apply at their
    defaults (normalise), auto threads for this machine (threads.resolve),
    smoke mode's sizes (scale). Every later stage takes the Point as it is."""
    given = {**cowsnap_config.point_defaults(), **settings}
    return Point(scale(threads.resolve(normalise(given), cpus), smoke_mib))


def point_of(settings: dict) -> Point:
    """A point given on a command line: checked against the schema, resolved."""
    return resolve(cowsnap_config.validate_point(settings))


def normalise(point: dict) -> dict:
    """The point with every key that does not apply to it (APPLIES) at its
    default, and without the watch keys unless it is a watch point."""
    done, defaults = commands_as_text(point), cowsnap_config.point_defaults()
    for entry, (methods, needs) in APPLIES.items():
        key, value = entry if isinstance(entry, tuple) else (entry, None)
        if key in done and (value is None or done[key] == value) and not _applies(done, methods, needs):
            done[key] = defaults[key]
    if done["method"] in BENCHMARK:
        done = {k: v for k, v in done.items() if k not in WATCH_KEYS}
    return done


def recorded_settings(point: dict) -> dict:
    """The settings a run's record holds: a watch point's own keys only (an
    array size or a writer count would mean nothing for it)."""
    if point["method"] in BENCHMARK:
        return dict(point)
    return {k: v for k, v in point.items() if k in WATCH_ALSO or k in WATCH_KEYS}


def check_applies(given: list[dict], where: str) -> None:
    """Refuses a value that applies to none of the points it was given for
    (a default never counts): the message names the key and the method."""
    defaults = cowsnap_config.point_defaults()
    given = [commands_as_text(point) for point in given]
    kept = [normalise(point) for point in given]
    for entry, (methods, needs) in APPLIES.items():
        key = entry[0] if isinstance(entry, tuple) else entry
        for value in {json.dumps(p[key]) for p in given if p.get(key, defaults[key]) != defaults[key]}:
            value = json.loads(value)
            if isinstance(entry, tuple) and entry[1] != value:
                continue
            if any(point.get(key) == value for point in kept):
                continue
            shown = ("method", *needs)
            found = sorted({",".join(f"{k}={p[k]}" for k in shown) for p in given if p[key] == value})
            raise ConfigError(
                f"{where}: {key}={json.dumps(value).strip(chr(34))} applies to none of its points "
                f"({'; '.join(found)}); it applies to {_condition(methods, needs)} only"
            )


# Smoke mode: writers that write for a time write at most this long.
SMOKE_WRITE_S = 0.5


def scale(point: dict, smoke_mib: int) -> dict:
    """The point in smoke mode: the array at most smoke_mib (one huge page
    or folio of its backing at least), its batch and memcpy buffer to fit, a
    writing time at most SMOKE_WRITE_S; threads kept."""
    if not smoke_mib or point["method"] not in BENCHMARK:
        return point
    page_mib = -(-plan_point.largest_page_kib(point["backing"]) // 1024)
    size = min(point["size_mib"], max(smoke_mib, page_mib))
    return {
        **point,
        "size_mib": size,
        "batch_kib": min(point["batch_kib"], size * 1024),
        "memcpy_mib": min(point["memcpy_mib"], smoke_mib),
        "write_s": min(point["write_s"], SMOKE_WRITE_S),
    }


def check_numa(point: dict, where: str) -> None:
    """Node lists parsed as the run parses them (point.parse_list)."""
    kind, _, spec = point["numa_mem"].partition(":")
    if spec and spec != "all":
        try:
            nodes = parse_list(spec, MAX_NODE)
        except ValueError as error:
            allowed = cowsnap_config.point_schema()["numa_mem"]["description"]
            raise ConfigError(
                f"{where}: numa_mem={point['numa_mem']!r} is not allowed ({error}); allowed values: {allowed}"
            ) from None
        if kind == "preferred" and len(nodes) != 1:
            raise ConfigError(f"{where}: numa_mem={point['numa_mem']!r}: preferred takes one node (0 to {MAX_NODE})")
    for key in ("numa_writers", "numa_copiers"):
        node = point[key].removeprefix("node:")
        if point[key] != "any" and int(node) > MAX_NODE:
            raise ConfigError(
                f"{where}: {key}={point[key]!r} is not allowed; allowed values: any, node:0 to node:{MAX_NODE}"
            )


def check_watch(point: dict, where: str, at: Callable[[str], str] | None = None, config_dirs=()) -> None:
    """A watch point names its program, every command is a command line,
    and none would fail every run (plan.commands)."""
    if not point["watch_command"].strip():
        raise ConfigError(
            f"{where}: method=watch needs watch_command (the program to run and watch): "
            f"{cowsnap_config.allowed_values(cowsnap_config.schema()['$defs']['command'])}"
        )
    for key in COMMAND_KEYS:
        try:
            shlex.split(point[key])
        except ValueError as error:
            raise ConfigError(
                f"{where}: {key}={point[key]!r} is not a command line ({error}); allowed values: a command line "
                "split as a shell splits words (quotes closed), or an argv list"
            ) from None
    commands.check(point, at or (lambda key: f"{where}.{key}"), config_dirs)


def check_meaningful(point: dict, where: str, at: Callable[[str], str] | None = None) -> None:
    """Values the schema allows that could not change what this point
    measures: refused at planning time, with the reason."""
    at = at or (lambda key: f"{where}.{key}")
    backing = point["backing"]
    folio = plan_point.largest_page_kib(backing)
    if (backing == "thp" or backing.startswith("mthp-")) and folio > point["size_mib"] * 1024:
        what = "huge page" if backing == "thp" else "folio"
        raise ConfigError(
            f"{at('backing')}: {backing}: a {folio} KiB {what} does not fit a {point['size_mib']} MiB array "
            f"(size_mib={point['size_mib']}), so its pages would be plain 4 KiB pages recorded as {backing}; "
            f"allowed: size_mib {-(-folio // 1024)} or more with backing={backing}, or backing=4k"
        )
    if backing.startswith("mthp-"):
        kib = plan_point.folio_kib(backing)
        if kib < 8 or kib & (kib - 1):
            raise ConfigError(
                f"{where}: backing={backing}: {kib} KiB is not a folio size (folios are a power of two "
                "pages); allowed: mthp-<N>k with N a power of two from 8 (the sizes a kernel offers: "
                "ls /sys/kernel/mm/transparent_hugepage/)"
            )
    writers = point["writers"]
    per_writer_kib = point["size_mib"] * 1024 // writers
    if point["write_latency_kib"] > per_writer_kib:
        raise ConfigError(
            f"{where}: write_latency_kib={point['write_latency_kib']} is larger than what each writer writes "
            f"({per_writer_kib} KiB: size_mib={point['size_mib']} over writers={writers}), so each "
            "would time a single write and the phases could not be told apart; allowed: 0 (off) or at most "
            f"{per_writer_kib}"
        )
    if point["vm_kernel"] != "host":
        nodes = plan_point.numa_nodes_named(point)
        missing = sorted(node for node in nodes if node >= point["vm_nodes"])
        if missing:
            raise ConfigError(
                f"{where}: names NUMA node {missing[0]}, which a VM of vm_nodes={point['vm_nodes']} does not "
                f"have (nodes 0 to {point['vm_nodes'] - 1}); allowed: raise vm_nodes or name a node below it"
            )


def check_point(point: dict, where: str, at: Callable[[str], str] | None = None, config_dirs=()) -> None:
    """Combinations no machine can run, and runs that cannot end (as
    planned here: this machine's memory); ConfigError names the keys, at(key)
    where each was given (default: where.key)."""
    at = at or (lambda key: f"{where}.{key}")
    if point["method"] not in BENCHMARK:
        check_watch(point, where, at, config_dirs)
        return
    check_numa(point, where)
    page_kib = PAGE_KIB.get(point["backing"], 4)
    if point["batch_kib"] % page_kib:
        raise ConfigError(
            f"{where}: batch_kib={point['batch_kib']} is not a whole number of "
            f"{page_kib} KiB pages of backing={point['backing']}"
        )
    if (point["size_mib"] * 1024) % page_kib:
        raise ConfigError(
            f"{where}: size_mib={point['size_mib']} is not a whole number of "
            f"{page_kib} KiB pages of backing={point['backing']}"
        )
    if point["batch_kib"] > point["size_mib"] * 1024:
        raise ConfigError(
            f"{where}: batch_kib={point['batch_kib']} is larger than the array "
            f"(size_mib={point['size_mib']}); allowed: batch_kib <= size_mib * 1024"
        )
    check_meaningful(point, where, at)
    if point["write_s"] > 0 and point["passes"] != 1:
        raise ConfigError(
            f"{where}: write_s={point['write_s']} with passes={point['passes']}: the writers write either for a "
            "time or for a number of passes; allowed: write_s 0 with any passes, or passes 1 with write_s above 0"
        )
    check_time(point, at)
    check_memory(point, at)
    if point["method"] != "fork":
        return
    if point["hold"] == "writers" and point["start"] == "after_child":
        raise ConfigError(
            f"{where}: hold=writers with start=after_child waits forever (the child waits for "
            "writers that wait for the child); exclude the combination"
        )


def _value(value) -> str:
    return json.dumps(value).strip(chr(34))


def check_time(point: dict, at: Callable[[str], str]) -> None:
    """A run sure to outlive its own time limit fails every time: refused.
    A fork point's child is killed at timeout_s, and it lives at least as
    long as it waits for the writers (plan.point.child_at_least); no run may
    be sure to take more than MAX_RUN_S."""
    child = plan_point.child_at_least(point)
    timeout = point["timeout_s"]
    if child is not None and child.seconds >= timeout:
        room = math.ceil(2 * plan_point.child_at_most(point))
        fix = f"timeout_s above {child.seconds:g}" + (
            f" ({room} leaves room: twice the child's bound)" if child.seconds < room <= plan_point.MAX_RUN_S else ""
        )
        raise ConfigError(
            f"{at('timeout_s')}: {timeout:g} s is shorter than the child must live ({child.key}="
            f"{_value(point[child.key])}): {child.why}, at least {duration(child.seconds)}; the child is killed at "
            f"timeout_s={timeout:g}, so every run fails; allowed: "
            + (f"{fix}, or a smaller {child.key}" if child.seconds < plan_point.MAX_RUN_S else f"a smaller {child.key}")
        )
    writers = plan_point.writers_at_least(point)
    if writers.seconds > plan_point.MAX_RUN_S:
        per_writer = "; write_rate counts one-element writes a second per writer (not MiB/s)"
        hint = per_writer if writers.key == "write_rate" else ""
        raise ConfigError(
            f"{at(writers.key)}: {_value(point[writers.key])} makes each run take at least "
            f"{duration(writers.seconds)}: {writers.why}; allowed: runs sure to end within a day "
            f"({plan_point.MAX_RUN_S} s, the longest timeout_s and write_s){hint}"
        )


@cache
def machine_memory_mib() -> int:
    """This machine's memory (MemTotal of /proc/meminfo), where the sweep
    is planned; 0 when it cannot be read (nothing is then refused for it)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def check_memory(point: dict, at: Callable[[str], str]) -> None:
    """Memory a run would take from this machine beyond all it has, through
    a key the run's own check of available memory does not count (the
    warming, a huge page pool given as a count): refused, naming the key.
    An array larger than the machine is skipped by its runs, with the
    reason (a warning at dry run)."""
    total = machine_memory_mib()
    if not total or plan_point.is_vm(point):
        return  # a VM point: against its VM, where the boots are known (check_boots)
    warm = plan_point.warm_mib(point)
    if point["warm_mib"] != "auto" and warm > total:  # auto: the arrays, which the run checks itself
        raise ConfigError(
            f"{at('warm_mib')}: {warm} MiB is more memory than this machine has ({total} MiB, MemTotal): "
            f"warming it fails or wakes the OOM killer; allowed: auto (what the point allocates, "
            f"{plan_point.memory_needed_mib(point)} MiB), 0, or at most {total} (warm_mib is in MiB)"
        )
    if point["backing"] in PAGE_KIB and point["hugetlb_pool"] != "auto":
        pool = point["hugetlb_pool"] * PAGE_KIB[point["backing"]] // 1024
        if pool > total:
            raise ConfigError(
                f"{at('hugetlb_pool')}: {point['hugetlb_pool']} huge pages of backing={point['backing']} are "
                f"{pool} MiB, more than this machine has ({total} MiB, MemTotal); allowed: auto (the pages the "
                f"point needs, {plan_point.hugetlb_pages_needed({**point, 'hugetlb_pool': 'auto'})}), or at most "
                f"{total * 1024 // PAGE_KIB[point['backing']]} pages"
            )


def _boots(points: list[tuple[dict, Callable[[str], str]]]) -> dict[tuple, list]:
    """The VM points by boot (one per vm_kernel and vm_nodes, as the workflow boots them)."""
    boots: dict[tuple, list] = {}
    for point, at in points:
        if plan_point.is_vm(point):
            boots.setdefault((point["vm_kernel"], point["vm_nodes"]), []).append((point, at))
    return boots


def check_boots(points: list[tuple[dict, Callable[[str], str]]]) -> None:
    """A VM point sure to outlive what its boot allows each point
    (plan.point.vm_point_limit_s), or warming more than its VM has: refused."""
    for boot in _boots(points).values():
        limit = plan_point.vm_point_limit_s([point for point, _ in boot])
        _, memory = plan_point.vm_shape([point for point, _ in boot])
        for point, at in boot:
            writers = plan_point.writers_at_least(point)
            if writers.seconds >= limit:
                raise ConfigError(
                    f"{at(writers.key)}: {_value(point[writers.key])}: {writers.why}, at least "
                    f"{duration(writers.seconds)}, and in a VM each point is killed after {limit:g} s (twice the "
                    f"longest timeout_s of its boot's points, {plan_point.VM_POINT_LIMIT_S} s at least), so every "
                    f"run fails; allowed: timeout_s above {writers.seconds / 2:g}, or a smaller {writers.key}"
                )
            needed = plan_point.memory_needed_mib(point) + plan_point.VM_MEMORY_SPARE_MIB
            if memory < needed:
                raise ConfigError(
                    f"{at('vm_memory_mib')}: the VM of vm_kernel={point['vm_kernel']}, vm_nodes={point['vm_nodes']} "
                    f"has {memory} MiB (the most its points name), and this point needs {needed} (its arrays and "
                    f"memcpy buffers, and {plan_point.VM_MEMORY_SPARE_MIB} for the guest kernel); allowed: auto, "
                    f"or at least {needed}"
                )
            if plan_point.warm_mib(point) > memory:
                raise ConfigError(
                    f"{at('warm_mib')}: {plan_point.warm_mib(point)} MiB is more memory than the VM it runs in has "
                    f"({memory} MiB, sized for its boot's arrays: vm_kernel={point['vm_kernel']}, "
                    f"vm_nodes={point['vm_nodes']}), so warming it fails; allowed: auto (what the point allocates), "
                    f"0, or at most {memory - plan_point.VM_MEMORY_SPARE_MIB} (warm_mib is in MiB)"
                )


# Rounds a lever needs before it is compared with its reference
# (cowsnap/analyse/stats.py MIN_PAIRS: tests/test_config.py holds them equal).
COMPARED_FROM = 3


def timed(point: dict) -> bool:
    """Whether a benchmark point's runs have times (a run that samples
    sharing has its times left out of every statistic; one under software
    emulation too, but whether a VM has KVM is known only when it boots)."""
    return point["method"] in BENCHMARK and point["sharing_interval_ms"] == 0


def check_precision(name: str, experiment: dict, points: list[dict], smoke_mib: int = 0) -> None:
    """Precision that no round could act on: refused, naming the key. A
    round adds runs to a lever whose comparison with its reference is open
    and, with ratio_half_width, to a point whose ratio to its baseline is
    too wide (cowsnap/analyse/precision.py): without a lever (a point whose
    reference is another point), or without a pair of timed points for a
    ratio, there is nothing it could add."""
    precision = experiment.get("precision")
    if not precision:
        return
    at = f"config.experiments.{name}.precision"

    def pairs(of, times: bool) -> list[dict]:
        return [
            point for point in points
            if (other := of(point, experiment, smoke_mib)) is not None and other != point
            and (not times or timed(point) and timed(other))
        ]  # fmt: skip

    # A lever is compared on its memory too, which a sampled run keeps; a ratio to the baseline is of times.
    levers, ratios = pairs(reference_of, times=False), pairs(baseline_of, times=True)
    width = precision.get("ratio_half_width")
    if width and not ratios:
        why = (
            "the experiment has no baseline"
            if "baseline" not in experiment
            else "each point's baseline is the point itself, or one of the two samples sharing "
            "(sharing_interval_ms: such runs are not timed)"
        )
        raise ConfigError(
            f"{at}.ratio_half_width: {width:g} adds runs where a point's ratio to its baseline is wider than that, "
            f"and no point here has a ratio to another point ({why}), so it could never add one; allowed: "
            "ratio_half_width with a baseline other than the points it compares, or no ratio_half_width"
        )
    # Round 0 decides from the planned runs: a lever is compared with its
    # reference from COMPARED_FROM rounds on, and one run's ratio has no width.
    repetitions = experiment["repetitions"]
    if (levers or width) and not (levers and repetitions >= COMPARED_FROM) and not (width and repetitions >= 2):
        compared = f"a lever is compared with its reference from {COMPARED_FROM} rounds on" if levers else ""
        one = "the ratio of one run to one has no interval to be wider than ratio_half_width" if width else ""
        least = 2 if width else COMPARED_FROM
        raise ConfigError(
            f"config.experiments.{name}.repetitions: {repetitions} is too few for precision: its first round "
            f"decides from these runs, and {' and '.join(filter(None, (compared, one)))}, so no round could add a "
            f"run; allowed: repetitions {least} or more"
        )
    if not levers and not width:
        if "reference" not in experiment:
            lever = "the experiment has no reference"
        else:
            lever = "its reference has no lever (no point has a reference other than itself)"
        raise ConfigError(
            f"{at}: adds runs for a lever whose comparison with its reference is open, or, with ratio_half_width, "
            f"for a point whose ratio to its baseline is too wide; {lever} and ratio_half_width is not set, so "
            "no round could add a run; allowed: a reference "
            "with at least one lever, or ratio_half_width with a baseline"
        )


def _matches(point: dict, rule: dict) -> bool:
    return all(point[key] == value for key, value in rule.items())


def _crosses(experiment: dict) -> list[dict]:
    matrix = experiment.get("matrix", {})
    return matrix if isinstance(matrix, list) else [matrix]


def point_count(experiment: dict) -> int:
    """Points of the matrix before exclusions (an upper bound), without crossing it."""
    return sum(math.prod(len(axis) for axis in cross.values()) for cross in _crosses(experiment))


def locator(name: str, experiment: dict, label: str, point: dict | None = None) -> Callable[[str], str]:
    """For a point of an experiment, where a key of it was given: the
    matrix axis that sets it (of a list of crosses, the one holding the
    point's value), else the base (a key given nowhere takes its default
    there), with the point's label."""
    crosses, listed = _crosses(experiment), isinstance(experiment.get("matrix"), list)
    defaults = cowsnap_config.point_defaults()

    def point_value(key: str):
        return (point or {}).get(key)

    def at(key: str) -> str:
        crossing = [index for index, cross in enumerate(crosses) if key in cross]
        # The cross this point's value came from, when one of several sets the key.
        index = next((index for index in crossing if point_value(key) in crosses[index][key]), None)
        index = crossing[0] if index is None and crossing else index
        place = "base" if index is None else f"matrix[{index}]" if listed else "matrix"
        default = place == "base" and experiment["base"].get(key) == defaults.get(key)
        return (
            f"config.experiments.{name}.{place}.{key}"
            + (" (the default)" if default else "")
            + (f" at point {label}" if label != "base" else "")
        )

    return at


def experiment_points(name: str, experiment: dict, smoke_mib: int = 0, config_dirs=()) -> list[dict]:
    """The base crossed with the matrix, less the excluded points, each
    normalised (keys that do not apply at their defaults) and, in smoke
    mode, scaled down."""
    return [point for point, _ in located_points(name, experiment, smoke_mib, config_dirs)]


def located_points(name: str, experiment: dict, smoke_mib: int = 0, config_dirs=()) -> list[tuple]:
    """experiment_points, each with its locator (where its keys were given),
    checked (check_point; a watch point's commands against config_dirs,
    the folders of the config files, for advice)."""
    points = []
    for cross in _crosses(experiment):
        for values in itertools.product(*cross.values()):
            point = commands_as_text({**experiment["base"], **dict(zip(cross, values, strict=True))})
            if point not in points:
                points.append(point)
    axes = varied_keys(points)
    rules = experiment["exclude"]
    for index, rule in enumerate(rules):
        if not any(_matches(point, rule) for point in points):
            raise ConfigError(f"config.experiments.{name}.exclude[{index}]: {rule} matches no point of the matrix")
    given = [point for point in points if not any(_matches(point, rule) for rule in rules)]
    if not given:
        raise ConfigError(f"config.experiments.{name}: every point is excluded")
    check_applies(given, f"config.experiments.{name}")
    kept = []
    for point in given:
        point = resolve(point, smoke_mib)
        if point not in kept:
            kept.append(point)
    located = []
    for point in kept:
        label = point_label(point, axes)
        where, at = f"config.experiments.{name} point {label}", locator(name, experiment, label, point)
        check_point(point, where, at, config_dirs)
        located.append((point, at))
        for role, of in (("baseline", baseline_of), ("reference", reference_of)):
            other = of(point, experiment, smoke_mib)
            if other is not None:
                check_baseline_applies(name, experiment[role], other, where, role)
            if other is not None and other not in kept:
                raise ConfigError(
                    f"{where}: its {role} {point_label(other, axes)} (the point updated by "
                    f"config.experiments.{name}.{role}) is not a point of the experiment"
                )
    return located


def check_baseline_applies(name: str, given: dict, baseline: dict, where: str, role: str = "baseline") -> None:
    """A baseline (or reference) key the point it names ignores (set back
    to its default, as a key that does not apply is) would compare with
    another point than the one named: refused."""
    defaults = cowsnap_config.point_defaults()
    for key, value in given.items():
        if value != defaults[key] and baseline.get(key) != value:
            raise ConfigError(
                f"{where}: config.experiments.{name}.{role}: {key}={json.dumps(value).strip(chr(34))} does not "
                f"apply to the {role} point (method={baseline['method']}), so it would change nothing; allowed: "
                f"keys that apply to the {role}'s method (cowsnap/plan/grid.py APPLIES)"
            )


def varied_keys(points: list[dict]) -> list[str]:
    """Keys that take more than one value across the points, in key order."""
    return [key for key in points[0] if len({json.dumps(p[key]) for p in points}) > 1]


def baseline_of(point: dict, experiment: dict, smoke_mib: int = 0) -> dict | None:
    """The point this one is compared with, or None without a baseline (a
    watch point has none: its program has no writers' time to compare)."""
    if "baseline" not in experiment or point["method"] not in BENCHMARK:
        return None
    return resolve({**point, **experiment["baseline"]}, smoke_mib)


def reference_of(point: dict, experiment: dict, smoke_mib: int = 0) -> dict | None:
    """The snapshot this one is a lever on (the experiment's `reference`),
    or None: for a point without a snapshot, or without a reference. A
    watch point's reference is another program (a pool's lever against the
    pool that has the problem)."""
    if "reference" not in experiment or point["method"] not in (*BENCHMARK, "watch") or point["method"] == "none":
        return None
    return resolve({**point, **experiment["reference"]}, smoke_mib)


def references(config: dict, name: str) -> dict[str, str]:
    """point id -> its reference's point id, for the experiment's levers
    (the reference itself and points without one left out). The analysis
    reads it, the runs do not: a new reference re-runs no measurement."""
    experiment, smoke_mib = config["experiments"][name], config.get("smoke_mib", 0)
    pairs = {}
    for point in experiment_points(name, experiment, smoke_mib):
        reference = reference_of(point, experiment, smoke_mib)
        if reference is not None and reference != point:
            pairs[point_id(point)] = point_id(reference)
    return pairs


def point_label(point: dict, axes: list[str]) -> str:
    return ",".join(f"{axis}={point[axis]}" for axis in axes if axis in point) or "base"


def expand(config: dict, config_dirs=()) -> list[Run]:
    """Every run of every experiment, in the order they are to run: in
    rounds, one per repetition, each holding that repetition of every point
    shuffled with config["schedule_seed"] across experiments. Drift on a noisy
    machine does not line up with one setting, and a point's n-th run is a
    neighbour of its baseline's n-th run, so their ratio can be taken run by
    run (cowsnap.analyse.stats)."""
    planned = sum(point_count(e) * most_repetitions(e) for e in config["experiments"].values())
    if planned > MAX_RUNS:
        raise ConfigError(
            f"config.experiments: up to {planned} runs (matrix points times repetitions, or "
            f"precision.max_repetitions where an experiment may add runs, over all experiments); "
            f"allowed: at most {MAX_RUNS}"
        )
    runs, located = [], []
    smoke_mib = config.get("smoke_mib", 0)
    for name, experiment in config["experiments"].items():
        here = located_points(name, experiment, smoke_mib, config_dirs)
        check_precision(name, experiment, [point for point, _ in here], smoke_mib)
        located += here
        for point, _ in here:
            baseline = baseline_of(point, experiment, smoke_mib)
            baseline_id = point_id(baseline) if baseline is not None else ""
            runs.extend(Run(name, point_id(point), rep, point, baseline_id) for rep in range(experiment["repetitions"]))
    check_boots(located)
    shuffle = random.Random(config["schedule_seed"]).shuffle
    rounds = []
    for repetition in sorted({run.repetition for run in runs}):
        this_round = [run for run in runs if run.repetition == repetition]
        shuffle(this_round)
        rounds.extend(this_round)
    return [dataclasses.replace(run, position=i) for i, run in enumerate(rounds)]


def most_repetitions(experiment: dict) -> int:
    """The runs a point of the experiment may get: its repetitions, or its
    precision's max_repetitions when rounds of more runs may add some."""
    return max(experiment["repetitions"], experiment.get("precision", {}).get("max_repetitions", 0))


def precision_rounds(experiment: dict) -> int:
    """How many rounds of more runs an experiment's precision may ask for."""
    precision = experiment.get("precision")
    if not precision:
        return 0
    return max(0, math.ceil((precision["max_repetitions"] - experiment["repetitions"]) / precision["step"]))


def round_runs(config: dict, name: str, point_ids: list[str], round_index: int) -> list[Run]:
    """The runs of one round of more runs (cowsnap.analyse.precision chose
    the points): `step` more repetitions of each, below max_repetitions, in
    sub-rounds of one repetition each, shuffled, so pairs stay neighbours."""
    experiment = config["experiments"][name]
    precision, smoke_mib = experiment["precision"], config.get("smoke_mib", 0)
    points = {point_id(point): point for point in experiment_points(name, experiment, smoke_mib)}
    first = experiment["repetitions"] + round_index * precision["step"]
    shuffle = random.Random(f"{config['schedule_seed']}/{name}/{round_index}").shuffle
    runs = []
    for repetition in range(first, min(first + precision["step"], precision["max_repetitions"])):
        this_round = []
        for pid in point_ids:
            baseline = baseline_of(points[pid], experiment, smoke_mib)
            this_round.append(Run(name, pid, repetition, points[pid], point_id(baseline) if baseline else ""))
        shuffle(this_round)
        runs.extend(this_round)
    return runs


# Warnings the dry run prints: values that are legal but likely mistakes.
MAX_WARNINGS = 20  # lines at most; the rest counted


def point_warnings(point: dict, at: Callable[[str], str], config_dirs=(), smoke_mib: int = 0) -> list[tuple[str, str]]:
    """(the key, the warning) for each value of a checked point that is
    legal but likely a mistake, or that this machine cannot run (its runs
    skip it, with the reason). Smoke mode's small arrays with the threads
    kept are no mistake: their copiers go unwarned."""
    if point["method"] == "watch":
        missing = commands.check(point, at, config_dirs)
        return [("commands", missing)] if missing else []
    out = []
    batches = -(-point["size_mib"] * 1024 // point["batch_kib"])
    if point["method"] in COPYING and point["copiers"] > batches and not smoke_mib:
        array = f"size_mib={point['size_mib']} over batch_kib={point['batch_kib']}"
        idle = point["copiers"] - batches
        text = f"{point['copiers']} copiers for the {batches} batches of the array ({array}): {idle} copy nothing"
        out.append(("copiers", f"{at('copiers')}: {text}"))
    child = plan_point.child_at_most(point) if point["method"] == "fork" else 0.0
    if not plan_point.is_vm(point) and point["timeout_s"] < 2 * child:
        text = (
            f"{point['timeout_s']:g} s leaves less than twice the child's bound ({duration(child)}): on a slow or "
            "busy machine the child may be killed, failing the run"
        )
        out.append(("timeout_s", f"{at('timeout_s')}: {text}"))
    writers = plan_point.writers_at_least(point)
    if writers.seconds >= plan_point.LONG_RUN_S:
        text = f"{_value(point[writers.key])}: each run takes at least {duration(writers.seconds)} ({writers.why})"
        out.append((writers.key, f"{at(writers.key)}: {text}"))
    total, needed = machine_memory_mib(), plan_point.memory_needed_mib(point)
    if total and not plan_point.is_vm(point) and needed > total:
        key = plan_point.run_bound(point).memory_key
        text = (
            f"the point needs {needed} MiB (its arrays and memcpy buffers), more than this machine has ({total} MiB, "
            "MemTotal): its runs are skipped here, with the reason"
        )
        out.append((key, f"{at(key)}: {text}"))
    return out


def warnings(config: dict, config_dirs=()) -> list[str]:
    """The dry run's warnings for a checked config: one line per
    experiment and key (the first point's words, with how many more), at
    most MAX_WARNINGS lines."""
    smoke_mib, found = config.get("smoke_mib", 0), {}
    located = []
    for name, experiment in config["experiments"].items():
        here = located_points(name, experiment, smoke_mib, config_dirs)
        located += here
        for point, at in here:
            for key, text in point_warnings(point, at, config_dirs, smoke_mib):
                found.setdefault((name, key), []).append(text)
    total = machine_memory_mib()
    for boot in _boots(located).values():
        _, memory = plan_point.vm_shape([point for point, _ in boot])
        if total and memory + plan_point.VM_MEMORY_SPARE_MIB > total:
            point, at = boot[0]
            found.setdefault(("vm", "size_mib"), []).append(
                f"{at('size_mib')}: the VM of vm_kernel={point['vm_kernel']}, vm_nodes={point['vm_nodes']} needs "
                f"{memory} MiB, beyond this machine's {total} MiB (MemTotal): its points are skipped here"
            )
    lines = [texts[0] + _more(len(texts) - 1) for texts in found.values()]
    if len(lines) > MAX_WARNINGS:
        lines = [*lines[: MAX_WARNINGS - 1], f"{len(lines) - MAX_WARNINGS + 1} more warnings like these"]
    return lines


def _more(count: int) -> str:
    return "" if not count else " (and 1 more point)" if count == 1 else f" (and {count} more points)"


def sweep_bound(config: dict, runs: list[Run]) -> str:
    """The dry run's line on the sweep's cost: its runs (with the most that
    precision's rounds may add), the most time they take one after another
    and the most memory one holds (plan.point.run_bound), the experiments
    that take most of it."""
    by_point = {(run.experiment, run.point_id): run.point for run in runs}
    boots = _boots([(point, None) for point in by_point.values()])
    limits = {key: plan_point.vm_point_limit_s([point for point, _ in boot]) for key, boot in boots.items()}
    seconds: dict[str, float] = {}
    planned = most = memory = 0
    for (name, _), point in by_point.items():
        experiment = config["experiments"][name]
        count = most_repetitions(experiment)
        boot = (point.get("vm_kernel"), point.get("vm_nodes"))
        bound = plan_point.run_bound(point, limits.get(boot, 0))
        seconds[name] = seconds.get(name, 0.0) + count * bound.seconds
        planned, most, memory = planned + experiment["repetitions"], most + count, max(memory, bound.memory_mib)
    boot_s = len(boots) * plan_point.VM_BOOT_S
    total = sum(seconds.values()) + boot_s
    largest = sorted(seconds.items(), key=lambda item: -item[1])[:3]
    runs_text = f"{planned} runs" + (f", up to {most} with the rounds precision may add" if most > planned else "")
    return (
        f"{runs_text}: at most {duration(total)} of runs"
        + (f" ({len(boots)} VM boot{'s' * (len(boots) > 1)} among them)" if boots else "")
        + f", at most {memory:,} MiB of memory in one run; most of it: "
        + ", ".join(f"{name} {duration(part)}" for name, part in largest)
        + " (a bound from each point's keys, cowsnap/plan/point.py: the parts of a run one after another at a "
        "tenth of this code's measured speed, a watch step at its timeout_s)"
    )
