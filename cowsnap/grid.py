"""Expand a validated config into runs: one per point and repetition."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass

from cowsnap.config import ConfigError

PAGE_KIB = {"hugetlb-2m": 2048, "hugetlb-1g": 1024 * 1024}


@dataclass(frozen=True)
class Run:
    experiment: str
    point_id: str
    repetition: int
    point: dict

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
    if point["dontfork"] and point["dest"] != "prefork":
        raise ConfigError(f"{where}: dontfork=true applies to dest=prefork only; exclude dest=child")


def _matches(point: dict, rule: dict) -> bool:
    return all(point[key] == value for key, value in rule.items())


def experiment_points(name: str, experiment: dict) -> list[dict]:
    """The base crossed with the matrix, less the excluded points."""
    matrix = experiment.get("matrix", {})
    axes = list(matrix)
    crossed = itertools.product(*matrix.values())
    points = [{**experiment["base"], **dict(zip(axes, values, strict=True))} for values in crossed]
    rules = experiment["exclude"]
    for index, rule in enumerate(rules):
        if not any(_matches(point, rule) for point in points):
            raise ConfigError(f"config.experiments.{name}.exclude[{index}]: {rule} matches no point of the matrix")
    kept = [point for point in points if not any(_matches(point, rule) for rule in rules)]
    if not kept:
        raise ConfigError(f"config.experiments.{name}: every point is excluded")
    for point in kept:
        check_point(point, f"config.experiments.{name} point {point_label(point, axes)}")
    return kept


def point_label(point: dict, axes: list[str]) -> str:
    return ",".join(f"{axis}={point[axis]}" for axis in axes) or "base"


def expand(config: dict) -> list[Run]:
    """Every run of every experiment, in config order."""
    runs = []
    for name, experiment in config["experiments"].items():
        for point in experiment_points(name, experiment):
            pid = point_id(point)
            runs.extend(Run(name, pid, rep, point) for rep in range(experiment["repetitions"]))
    return runs
