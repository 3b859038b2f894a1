"""What the workflow's jobs share: their log, the run schedule, the steps
of a timed job, report text.

Kept free of heavy imports (cppyy loads only when a run measures): the
workflow imports it before any job runs.
"""

from __future__ import annotations

import contextlib
import json
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cowsnap.measure import native, records, vm
from cowsnap.measure.bench import runner

SCHEDULE = "schedule.json"
RUN_SUMMARY = ("run_id", "status", "reason", "kernel", "writers_s")  # a run's line in its job's log
# Test hook, read by the benchmark executable (native/bench/bench_main.cpp): when
# set to a folder, each benchmark process writes <pid>.waiting there and waits,
# its settings in place and nothing measured yet, until the folder holds
# <pid> or "all". Tests use it to hold a sweep at a known point.
GATE_VARIABLE = "COWSNAP_TEST_GATE"


@contextlib.contextmanager
def logged(path, capture_stderr: bool = True):
    """The job's log; an exception's traceback is written there before it
    propagates, so a failed job's log says why. A script's job, a process of
    its own, also sends its stderr there; a job run inside Snakemake's
    process (run_point) does not, as stderr is the whole process's."""
    with open(path, "w") as log, contextlib.redirect_stderr(log) if capture_stderr else contextlib.nullcontext():
        try:
            yield log
        except BaseException:
            traceback.print_exc(file=log)
            log.flush()
            raise


@dataclass(frozen=True)
class JobRun:
    """One run of a timed job: where its record goes, its ids, and the record
    path of the results folder whose schedule places it (its own, unless the
    record is written elsewhere first, as a VM boot's are)."""

    out: Path
    ids: dict
    scheduled_as: Path | None = None


def timed_job(
    log_path,
    runs: list[JobRun],
    measure: Callable[[native.Build, list[dict]], list[dict]],
    build: tuple,
    summary_keys: tuple[str, ...],
    capture_stderr: bool = True,
) -> None:
    """The steps of every timed job, in order: its log; each run's ids with
    its place in the schedule; room for its records; the build the build
    rule made (library, cxxflags, build log), loaded, never built here;
    measure(build, ids of each run) -> a record per run; each record written
    atomically, and a line of it in the log."""
    with logged(log_path, capture_stderr) as log:
        ids = [{**run.ids, **schedule_ids(run.scheduled_as or run.out, run.ids["run_id"])} for run in runs]
        for folder in {Path(run.out).parent for run in runs}:
            records.check_space(folder)
        # The build rule owns building: a timed job only loads what it made.
        loaded = native.built(*build)
        for run, record in zip(runs, measure(loaded, ids), strict=True):
            records.write(Path(run.out), record)
            print(json.dumps({k: record.get(k) for k in summary_keys}), file=log)


def run_point(record_path, log_path, point: dict, ids: dict, library, cxxflags: str, build_log: str, boot=None):
    """One timed run measured here, or the record of a run measured in a VM
    boot (run_vm_boot) copied from the boot's folder; written atomically.
    The run_point rule calls it inside Snakemake's own process, so cppyy and
    the build are loaded once per sweep, not once per run."""
    if boot:
        with logged(log_path, capture_stderr=False) as log:
            record = json.loads((Path(boot) / vm.record_name(ids["run_id"])).read_text())
            records.write(Path(record_path), record)
            print(json.dumps({k: record.get(k) for k in RUN_SUMMARY}), file=log)
        return
    timed_job(
        log_path,
        [JobRun(Path(record_path), ids)],
        lambda build, ids: [runner.run(point, build, ids[0])],
        (library, cxxflags, build_log),
        RUN_SUMMARY,
        capture_stderr=False,
    )


def write_schedule(results: Path, seed: int, runs) -> None:
    """The shuffled order of every run of the config, read by each timed job
    (it is not a parameter of the rule, so a new order reruns nothing)."""
    positions = {run.run_id: run.position for run in runs}
    records.write(Path(results) / SCHEDULE, {"schedule_seed": seed, "positions": positions})


def schedule_ids(record_path: Path, run_id: str) -> dict:
    """schedule_seed and schedule_position of a run, from the schedule of the
    results folder its record goes in (results/<experiment>/<point>/<n>.json)."""
    try:
        schedule = json.loads((Path(record_path).parents[2] / SCHEDULE).read_text())
        return {"schedule_seed": schedule["schedule_seed"], "schedule_position": schedule["positions"][run_id]}
    except (OSError, ValueError, KeyError, TypeError):
        return {"schedule_seed": None, "schedule_position": None}


_RST_SPECIAL = re.compile(r"([\\`*_|\[\]<>:.#=+\-~^'\"!$%&(),/;?@{}])")


def rst_text(text: str) -> str:
    """Plain text as reStructuredText that renders as the same text: one
    paragraph, every markup character escaped (no directive, role, link,
    substitution or raw HTML can come through)."""
    return _RST_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))
