"""Expand a validated config into runs: one per point and repetition."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import random
import shlex
from dataclasses import dataclass

from cowsnap.plan import config as cowsnap_config
from cowsnap.plan import point as plan_point
from cowsnap.plan import threads
from cowsnap.plan.config import ConfigError
from cowsnap.plan.methods import BENCHMARK, BENCHMARK_KEYS, COMMAND_KEYS, WATCH_KEYS, taking
from cowsnap.plan.point import PAGE_KIB, Point, parse_list

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
WATCH_ALSO = ("method", "thp_mode", "delayacct", "timeout_s")
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
}
# Last, so a value that applies to a few methods is refused naming them.
CONDITIONS = {**NARROWER, **{key: {} for key in (*BENCHMARK_KEYS, *WATCH_KEYS) if key not in NARROWER}}
APPLIES: dict = {
    key: (taking(key if isinstance(key, str) else "=".join(key)), others) for key, others in CONDITIONS.items()
}


# Point keys added after records existed, with the default that leaves a
# point's id unchanged (so finished runs are not redone).
LATER_KEYS = {"passes": 1, "write_s": 0, "write_rate": 0, "touched_during": "free", "warm_mib": 0, "check_copy": True}


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
        point = {k: v for k, v in point.items() if k not in ("vm_kernel", "vm_nodes")}
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
    """The point in smoke mode: the array at most smoke_mib (a hugetlb array
    one huge page at least), its batch and memcpy buffer to fit, a writing
    time at most SMOKE_WRITE_S; threads kept."""
    if not smoke_mib or point["method"] not in BENCHMARK:
        return point
    page_mib = PAGE_KIB.get(point["backing"], 4) // 1024 or 1
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


def check_watch(point: dict, where: str) -> None:
    """A watch point names its program, and every command is a command line."""
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


def check_meaningful(point: dict, where: str) -> None:
    """Values the schema allows that could not change what this point
    measures: refused at planning time, with the reason."""
    backing = point["backing"]
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


def check_point(point: dict, where: str) -> None:
    """Combinations no machine can run; ConfigError names the keys."""
    if point["method"] not in BENCHMARK:
        check_watch(point, where)
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
    check_meaningful(point, where)
    if point["write_s"] > 0 and point["passes"] != 1:
        raise ConfigError(
            f"{where}: write_s={point['write_s']} with passes={point['passes']}: the writers write either for a "
            "time or for a number of passes; allowed: write_s 0 with any passes, or passes 1 with write_s above 0"
        )
    if point["method"] != "fork":
        return
    if point["hold"] == "writers" and point["start"] == "after_child":
        raise ConfigError(
            f"{where}: hold=writers with start=after_child waits forever (the child waits for "
            "writers that wait for the child); exclude the combination"
        )


def _matches(point: dict, rule: dict) -> bool:
    return all(point[key] == value for key, value in rule.items())


def _crosses(experiment: dict) -> list[dict]:
    matrix = experiment.get("matrix", {})
    return matrix if isinstance(matrix, list) else [matrix]


def point_count(experiment: dict) -> int:
    """Points of the matrix before exclusions (an upper bound), without crossing it."""
    return sum(math.prod(len(axis) for axis in cross.values()) for cross in _crosses(experiment))


def experiment_points(name: str, experiment: dict, smoke_mib: int = 0) -> list[dict]:
    """The base crossed with the matrix, less the excluded points, each
    normalised (keys that do not apply at their defaults) and, in smoke
    mode, scaled down."""
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
    for point in kept:
        where = f"config.experiments.{name} point {point_label(point, axes)}"
        check_point(point, where)
        baseline = baseline_of(point, experiment, smoke_mib)
        if baseline is not None:
            check_baseline_applies(name, experiment["baseline"], baseline, where)
        if baseline is not None and baseline not in kept:
            raise ConfigError(
                f"{where}: its baseline {point_label(baseline, axes)} (the point updated by "
                f"config.experiments.{name}.baseline) is not a point of the experiment"
            )
    return kept


def check_baseline_applies(name: str, given: dict, baseline: dict, where: str) -> None:
    """A baseline key the baseline point ignores (set back to its default,
    as a key that does not apply is) would compare with another point than
    the one named: refused."""
    defaults = cowsnap_config.point_defaults()
    for key, value in given.items():
        if value != defaults[key] and baseline.get(key) != value:
            raise ConfigError(
                f"{where}: config.experiments.{name}.baseline: {key}={json.dumps(value).strip(chr(34))} does not "
                f"apply to the baseline point (method={baseline['method']}), so it would change nothing; allowed: "
                "keys that apply to the baseline's method (cowsnap/plan/grid.py APPLIES)"
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


def point_label(point: dict, axes: list[str]) -> str:
    return ",".join(f"{axis}={point[axis]}" for axis in axes if axis in point) or "base"


def expand(config: dict) -> list[Run]:
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
    runs = []
    smoke_mib = config.get("smoke_mib", 0)
    for name, experiment in config["experiments"].items():
        for point in experiment_points(name, experiment, smoke_mib):
            baseline = baseline_of(point, experiment, smoke_mib)
            baseline_id = point_id(baseline) if baseline is not None else ""
            runs.extend(Run(name, point_id(point), rep, point, baseline_id) for rep in range(experiment["repetitions"]))
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
