# Config validation, the grid of runs, and the input functions of the rules.
from cowsnap import config as cowsnap_config
from cowsnap import grid, knobs, native, plots

CONFIG = cowsnap_config.validate(config)
RUNS = {run.run_id: run for run in grid.expand(CONFIG)}
RESULTS = CONFIG["results"]
EXPERIMENTS = list(CONFIG["experiments"])
BUILD_KEY = native.build_key(CONFIG["cxxflags"])


wildcard_constraints:
    experiment=r"[a-z][a-z0-9_]*",
    point=r"p[0-9a-f]{10}",
    repetition=r"\d+",
    figure="|".join(plots.FIGURES),


def get_run(wildcards):
    return RUNS[f"{wildcards.experiment}/{wildcards.point}/{wildcards.repetition}"]


def get_point(wildcards):
    return get_run(wildcards).point


def get_ids(wildcards):
    run = get_run(wildcards)
    return {
        "run_id": run.run_id,
        "experiment": run.experiment,
        "point_id": run.point_id,
        "repetition": run.repetition,
    }


def get_records(wildcards):
    return [f"{RESULTS}/{run.run_id}.json" for run in RUNS.values() if run.experiment == wildcards.experiment]


def get_final_outputs():
    return [
        f"{RESULTS}/figures/{experiment}-{figure}.{ext}"
        for experiment in EXPERIMENTS
        for figure in plots.FIGURES
        for ext in ("png", "pdf")
    ]
