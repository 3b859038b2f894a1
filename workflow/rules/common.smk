# Config validation, the grid of runs, and the input functions of the rules.
import hashlib
import json
import sys
from pathlib import Path

from cowsnap.plan import config as cowsnap_config
from cowsnap.plan import grid
from cowsnap import jobs
from cowsnap.measure import knobs, native
from cowsnap.analyse import aggregate, figures
from cowsnap import rerun

# The config files' folders: a watch command's relative path is judged
# against them (commands run in each run's own empty folder).
CONFIG_DIRS = [Path(path).resolve().parent for path in workflow.configfiles]
try:
    for path in workflow.configfiles:
        cowsnap_config.read_yaml(path)  # refuses a key given twice, which YAML would let pass
    CONFIG = cowsnap_config.validate(config)
    RUNS = {run.run_id: run for run in grid.expand(CONFIG, CONFIG_DIRS)}  # in schedule order
except cowsnap_config.ConfigError as error:
    sys.exit(f"cowsnap: {error}")  # the message alone: it names the key and what is allowed
# The main process (a dry run too) warns of values that are legal but likely
# mistakes, and says what the sweep's runs cost at most (cowsnap.plan.grid).
if workflow.is_main_process:
    for _warning in grid.warnings(CONFIG, CONFIG_DIRS):
        print(f"cowsnap: warning: {_warning}", file=sys.stderr)
    print(f"cowsnap: {grid.sweep_bound(CONFIG, list(RUNS.values()))}", file=sys.stderr)
RESULTS = CONFIG["results"]
EXPERIMENTS = list(CONFIG["experiments"])
BUILD_KEY = native.build_key(CONFIG["cxxflags"])
CONFIG_HASH = hashlib.sha256(json.dumps(CONFIG, sort_keys=True).encode()).hexdigest()[:12]

# A run whose record is missing (deleted, or removed by `cowsnap
# rerun-failed`) is run again, with its experiment's tables and figures and
# the summary: Snakemake alone would not remake a missing record whose
# tables are up to date. Its experiment's missing.txt, written here when the
# tables exist, is an input of the tables newer than them (cowsnap.rerun).
# Only the main process notes them: a job's own process (on a cluster)
# parses this file too.
if workflow.is_main_process:
    for _experiment, _missing in rerun.note_missing(RESULTS, RUNS.values()).items():
        print(
            f"cowsnap: {_experiment}: {len(_missing)} run(s) without a record "
            f"({rerun.missing_path(RESULTS, _experiment)}): measured again, then its tables",
            file=sys.stderr,
        )


wildcard_constraints:
    experiment=r"[a-z][a-z0-9_]*",
    point=r"p[0-9a-f]{10}",
    repetition=r"\d+",
    round=r"\d+",
    figure="|".join(figures.NAMES),
    boot=r"[0-9A-Za-z.+_-]+-[0-9]+nodes",


# A run of each point, for the runs a round of more runs adds (precision).
POINT_RUNS = {(run.experiment, run.point_id): run for run in RUNS.values()}


def get_run(wildcards):
    run_id = f"{wildcards.experiment}/{wildcards.point}/{wildcards.repetition}"
    if run_id in RUNS:
        return RUNS[run_id]
    known = POINT_RUNS[(wildcards.experiment, wildcards.point)]  # a round of more runs: after every planned run
    return grid.Run(
        known.experiment, known.point_id, int(wildcards.repetition), known.point, known.baseline_id, len(RUNS)
    )


def get_point(wildcards):
    return get_run(wildcards).point


def get_ids(wildcards_or_run):
    run = wildcards_or_run if isinstance(wildcards_or_run, grid.Run) else get_run(wildcards_or_run)
    return {
        "run_id": run.run_id,
        "experiment": run.experiment,
        "point_id": run.point_id,
        "repetition": run.repetition,
        "baseline_id": run.baseline_id,
    }


def get_priority(wildcards):
    """Earlier in the shuffled schedule, higher priority: with one
    bench_slot, the timed runs go in schedule order. The order is not a
    tracked parameter, so a new order reruns nothing; each run reads its
    place from the schedule file written when the sweep starts."""
    return len(RUNS) - get_run(wildcards).position


def vm_boot_of(run):
    """The boot a run is measured in ('' on this machine): one per vm_kernel and vm_nodes."""
    return rerun.vm_boot(run.point)


VM_BOOTS = {}  # boot -> its runs, in schedule order
for _run in RUNS.values():
    if vm_boot_of(_run):
        VM_BOOTS.setdefault(vm_boot_of(_run), []).append(_run)


def get_vm_boot(wildcards):
    """The folder of the boot that measured this run, or nothing."""
    boot = vm_boot_of(get_run(wildcards))
    return [f"{RESULTS}/vm/{boot}"] if boot else []


def get_bench_slot(wildcards):
    """A run measured in a VM boot only copies its record: it needs no slot."""
    return 0 if vm_boot_of(get_run(wildcards)) else 1


def get_boot_runs(wildcards):
    """What one boot measures: each run's ids and point (a change reruns the boot)."""
    return [
        {"ids": {**get_ids(run), "record": f"{RESULTS}/{run.run_id}.json"}, "point": run.point}
        for run in VM_BOOTS[wildcards.boot]
    ]


def planned_records(experiment):
    return [f"{RESULTS}/{run.run_id}.json" for run in RUNS.values() if run.experiment == experiment]


def more_records(experiment, rounds):
    """The records the first `rounds` rounds of more runs asked for (each
    round's checkpoint chose its points from the records before it)."""
    out = []
    for round_index in range(rounds):
        chosen = json.loads(
            Path(checkpoints.more_runs.get(experiment=experiment, round=round_index).output[0]).read_text()
        )
        if not chosen:
            break
        out += [f"{RESULTS}/{run.run_id}.json" for run in grid.round_runs(CONFIG, experiment, chosen, round_index)]
    return out


def get_records(wildcards):
    """Every record of an experiment: the planned runs, then the rounds of
    more runs its precision asks for."""
    experiment = wildcards.experiment
    rounds = grid.precision_rounds(CONFIG["experiments"][experiment])
    return planned_records(experiment) + more_records(experiment, rounds)


def get_round_records(wildcards):
    """The records a round of more runs decides from: those before it."""
    return planned_records(wildcards.experiment) + more_records(wildcards.experiment, int(wildcards.round))


def get_missing_note(wildcards):
    """The experiment's missing.txt when one was written: newer than the
    tables after records went missing, it has them made again."""
    path = rerun.missing_path(RESULTS, wildcards.experiment)
    return [str(path)] if path.exists() else []


def get_figures(experiment):
    points = [run.point for run in RUNS.values() if run.experiment == experiment]
    methods = {point["method"] for point in points}
    samples_sharing = any(point["sharing_interval_ms"] > 0 for point in points)
    sizes = len({point.get("size_mib") for point in points if point["method"] == "fork"})
    times_writes = any(point.get("write_latency_kib", 0) > 0 for point in points)
    kernels = len({point.get("vm_kernel") for point in points if point["method"] == "fork"})
    has_baseline = "baseline" in CONFIG["experiments"][experiment]
    has_reference = "reference" in CONFIG["experiments"][experiment]
    rated = [p for p in points if p["method"] in ("fork", "uffd", "stop") and p.get("write_rate", 0) > 0]
    model_sizes = len({point["size_mib"] for point in rated})
    return figures.figures_for(
        methods, has_baseline, samples_sharing, sizes, times_writes, kernels, has_reference, model_sizes
    )


def get_description(wildcards):
    return CONFIG["experiments"][wildcards.experiment]["description"]


def get_report_description(wildcards):
    """The description as the report's reStructuredText shows it: plain text."""
    return jobs.rst_text(get_description(wildcards))


def get_final_outputs():
    figures = [
        f"{RESULTS}/figures/{experiment}-{figure}.{ext}"
        for experiment in EXPERIMENTS
        for figure in get_figures(experiment)
        for ext in ("png", "pdf", "caption.txt", "json")
    ]
    return figures + [f"{RESULTS}/summary.md"]
