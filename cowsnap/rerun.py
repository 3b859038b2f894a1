"""Measuring runs again. A sweep reruns a run whose record is missing, with
what depends on it (its experiment's tables and figures, the summary);
`cowsnap rerun-failed` removes a results folder's failed records so that
the next sweep measures those runs again.

Snakemake alone does not remake a missing record whose experiment's tables
are up to date (a missing intermediate file is not a reason to run). So at
parse time the workflow writes results/<experiment>/missing.txt, naming the
runs without a record, for each experiment whose tables exist while records
of it are missing: an input of the tables (see workflow/rules/common.smk)
newer than them, it makes the tables out of date, and making them again
needs the missing records.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

MISSING = "missing.txt"  # results/<experiment>/missing.txt
TABLE = "runs.csv"  # one of the tables the aggregate rule writes: they exist when it does
RECORD = re.compile(r"(?P<experiment>[a-z][a-z0-9_]*)/(?P<point>p[0-9a-f]{10})/(?P<repetition>\d+)\.json")


def vm_boot(point: dict) -> str:
    """The VM boot a point is measured in ('' on this machine): one per
    vm_kernel and vm_nodes, its records in results/vm/<boot>/."""
    return "" if point.get("vm_kernel", "host") == "host" else f"{point['vm_kernel']}-{point['vm_nodes']}nodes"


def missing_path(results, experiment: str) -> Path:
    return Path(results) / experiment / MISSING


def note_missing(results, runs) -> dict[str, list[str]]:
    """For each experiment of runs (grid.Run) whose tables exist while some
    of its records do not, (re)writes its missing.txt, one run id a line;
    returns those experiments and their missing run ids. Cheap: one stat per
    record of an experiment whose tables exist."""
    results = Path(results)
    by_experiment: dict[str, list[str]] = {}
    for run in runs:
        by_experiment.setdefault(run.experiment, []).append(run.run_id)
    noted = {}
    for experiment, run_ids in by_experiment.items():
        if not (results / experiment / TABLE).exists():
            continue  # the tables are made anyway, with every record
        missing = [run_id for run_id in run_ids if not (results / f"{run_id}.json").exists()]
        if missing:
            missing_path(results, experiment).write_text("".join(f"{run_id}\n" for run_id in missing))
            noted[experiment] = missing
    return noted


def failed_records(results) -> list[Path]:
    """The records of a results folder (results/<experiment>/<point>/<n>.json) whose status is failed."""
    results = Path(results)
    found = []
    for path in sorted(results.glob("*/p*/*.json")):
        if not RECORD.fullmatch(path.relative_to(results).as_posix()):
            continue
        try:
            status = json.loads(path.read_text()).get("status")
        except (OSError, ValueError, AttributeError):
            continue  # not a record a run wrote: left for the aggregate rule to name
        if status == "failed":
            found.append(path)
    return found


def remove_failed(results) -> list[Path]:
    """Removes the failed records of a results folder, the timeline a
    failed watch point left beside its record, and the folder of each VM
    boot that measured a failed run (a boot measures all its runs again);
    returns what it removed. The next sweep measures those runs again."""
    results = Path(results)
    removed = []
    for path in failed_records(results):
        boot = vm_boot(json.loads(path.read_text()))
        for extra in (path.with_suffix(".timeline.csv"), results / "vm" / boot if boot else None):
            if extra is not None and extra.exists():
                shutil.rmtree(extra) if extra.is_dir() else extra.unlink()
                removed.append(extra)
        path.unlink()
        removed.append(path)
    return removed
