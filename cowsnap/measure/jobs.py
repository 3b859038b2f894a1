"""What the workflow's jobs share: their log, the run schedule, one timed
run, report text.

Kept free of heavy imports: the workflow imports it before any job runs.
"""

from __future__ import annotations

import contextlib
import json
import re
import traceback
from pathlib import Path

SCHEDULE = "schedule.json"
# Test hook, read by the benchmark executable (native/bench_main.cpp): when
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


def run_point(record_path, log_path, point: dict, ids: dict, library, cxxflags: str, build_log: str, boot=None):
    """One timed run measured here, or the record of a run measured in a VM
    boot (run_vm_boot) copied from the boot's folder; written atomically.
    The run_point rule calls it inside Snakemake's own process, so cppyy and
    the build are loaded once per sweep, not once per run."""
    with logged(log_path, capture_stderr=False) as log:
        from cowsnap.measure import native, records, runner, vm

        out = Path(record_path)
        if boot:
            record = json.loads((Path(boot) / vm.record_name(ids["run_id"])).read_text())
        else:
            ids = {**ids, **schedule_ids(out, ids["run_id"])}
            records.check_space(out.parent)
            # The build rule owns building: a timed job only loads what it made.
            record = runner.run(point, native.built(library, cxxflags, build_log), ids)
        records.write(out, record)
        print(json.dumps({k: record.get(k) for k in ("run_id", "status", "reason", "kernel", "writers_s")}), file=log)


def die_with_parent() -> None:
    """A subprocess's preexec_fn: the kernel kills the process when the one
    that started it dies, so a killed job leaves nothing it started running."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def write_schedule(results: Path, seed: int, runs) -> None:
    """The shuffled order of every run of the config, read by each timed job
    (it is not a parameter of the rule, so a new order reruns nothing)."""
    from cowsnap.measure import records

    positions = {run.run_id: run.position for run in runs}
    records.write(Path(results) / SCHEDULE, {"seed": seed, "positions": positions})


def schedule_ids(record_path: Path, run_id: str) -> dict:
    """schedule_seed and schedule_position of a run, from the schedule of the
    results folder its record goes in (results/<experiment>/<point>/<n>.json)."""
    try:
        schedule = json.loads((Path(record_path).parents[2] / SCHEDULE).read_text())
        return {"schedule_seed": schedule["seed"], "schedule_position": schedule["positions"][run_id]}
    except (OSError, ValueError, KeyError, TypeError):
        return {"schedule_seed": None, "schedule_position": None}


_RST_SPECIAL = re.compile(r"([\\`*_|\[\]<>:.#=+\-~^'\"!$%&(),/;?@{}])")


def rst_text(text: str) -> str:
    """Plain text as reStructuredText that renders as the same text: one
    paragraph, every markup character escaped (no directive, role, link,
    substitution or raw HTML can come through)."""
    return _RST_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))
