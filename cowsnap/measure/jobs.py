"""What the workflow's scripts share: their log, the run schedule, report text.

Kept free of heavy imports: every timed job imports this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import traceback
from pathlib import Path

SCHEDULE = "schedule.json"
# Test hook: when set to a folder, a timed job announces itself there
# (<token>.waiting, holding its pid) and waits before it measures until the
# folder holds <token> or "all" (token: the run id with "/" as "_"). Tests use
# it to hold a sweep at a known point; sweeps never set it.
GATE_VARIABLE = "COWSNAP_TEST_GATE"


@contextlib.contextmanager
def logged(path):
    """The job's stderr goes to its log; an exception's traceback is written
    there before it propagates, so a failed job's log says why."""
    with open(path, "w") as log, contextlib.redirect_stderr(log):
        try:
            yield log
        except BaseException:
            traceback.print_exc(file=log)
            log.flush()
            raise


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


def wait_at_gate(run_id: str) -> None:
    """The test hook (GATE_VARIABLE); does nothing when it is not set."""
    gate = os.environ.get(GATE_VARIABLE)
    if not gate:
        return
    token = run_id.replace("/", "_")
    Path(gate, f"{token}.waiting").write_text(str(os.getpid()))
    while not (Path(gate, token).exists() or Path(gate, "all").exists()):
        time.sleep(0.01)


_RST_SPECIAL = re.compile(r"([\\`*_|\[\]<>:.#=+\-~^'\"!$%&(),/;?@{}])")


def rst_text(text: str) -> str:
    """Plain text as reStructuredText that renders as the same text: one
    paragraph, every markup character escaped (no directive, role, link,
    substitution or raw HTML can come through)."""
    return _RST_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))
