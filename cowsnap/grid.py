"""Expand a validated config into runs: one per point and repetition."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import random
from dataclasses import dataclass

from cowsnap.config import ConfigError

PAGE_KIB = {"hugetlb-2m": 2048, "hugetlb-1g": 1024 * 1024}


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
    """Stable name of a point: a hash of all its settings."""
    canonical = json.dumps(point, sort_keys=True, separators=(",", ":"))
    return "p" + hashlib.sha256(canonical.encode()).hexdigest()[:10]


def check_point(point: dict, where: str) -> None:
    """Combinations no machine can run; ConfigError names the keys."""
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
    if point["method"] != "fork":
        return
    if point["hold"] == "writers" and point["start"] == "after_child":
        raise ConfigError(
            f"{where}: hold=writers with start=after_child waits forever (the child waits for "
            "writers that wait for the child); exclude the combination"
        )
    if point["dontfork"] and point["dest"] != "zeroed":
        raise ConfigError(f"{where}: dontfork=true applies to dest=zeroed only; exclude dest=fresh")


def _matches(point: dict, rule: dict) -> bool:
    return all(point[key] == value for key, value in rule.items())


def experiment_points(name: str, experiment: dict) -> list[dict]:
    """The base crossed with the matrix, less the excluded points."""
    matrix = experiment.get("matrix", {})
    points = []
    for cross in matrix if isinstance(matrix, list) else [matrix]:
        for values in itertools.product(*cross.values()):
            point = {**experiment["base"], **dict(zip(cross, values, strict=True))}
            if point not in points:
                points.append(point)
    axes = varied_keys(points)
    rules = experiment["exclude"]
    for index, rule in enumerate(rules):
        if not any(_matches(point, rule) for point in points):
            raise ConfigError(f"config.experiments.{name}.exclude[{index}]: {rule} matches no point of the matrix")
    kept = [point for point in points if not any(_matches(point, rule) for rule in rules)]
    if not kept:
        raise ConfigError(f"config.experiments.{name}: every point is excluded")
    for point in kept:
        where = f"config.experiments.{name} point {point_label(point, axes)}"
        check_point(point, where)
        baseline = baseline_of(point, experiment)
        if baseline is not None and baseline not in kept:
            raise ConfigError(
                f"{where}: its baseline {point_label(baseline, axes)} (the point updated by "
                f"config.experiments.{name}.baseline) is not a point of the experiment"
            )
    return kept


def varied_keys(points: list[dict]) -> list[str]:
    """Keys that take more than one value across the points, in key order."""
    return [key for key in points[0] if len({json.dumps(p[key]) for p in points}) > 1]


def baseline_of(point: dict, experiment: dict) -> dict | None:
    """The point this one is compared with, or None without a baseline."""
    if "baseline" not in experiment:
        return None
    return {**point, **experiment["baseline"]}


def point_label(point: dict, axes: list[str]) -> str:
    return ",".join(f"{axis}={point[axis]}" for axis in axes) or "base"


def expand(config: dict) -> list[Run]:
    """Every run of every experiment, in the order they are to run: shuffled
    with config["seed"] across experiments and repetitions, so that drift on
    a noisy machine does not line up with one setting."""
    runs = []
    for name, experiment in config["experiments"].items():
        for point in experiment_points(name, experiment):
            baseline = baseline_of(point, experiment)
            baseline_id = point_id(baseline) if baseline is not None else ""
            runs.extend(Run(name, point_id(point), rep, point, baseline_id) for rep in range(experiment["repetitions"]))
    random.Random(config["seed"]).shuffle(runs)
    return [dataclasses.replace(run, position=i) for i, run in enumerate(runs)]
