# cowsnap: what a fork()-based memory snapshot costs a running program.
# config -> grid of runs -> build (cppyy) -> one timed job per run -> tables -> figures
from snakemake.utils import min_version

min_version("9.0")


# The default sweep, unless --configfile names another: a config given on
# the command line replaces it (its experiments only), --config adds to
# whichever is used.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/build.smk"
include: "workflow/rules/run.smk"
include: "workflow/rules/watch.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/plot.smk"


# On a cluster only the timed runs are submitted; the rest run where
# Snakemake runs.
localrules:
    all,
    build,
    aggregate,
    more_runs,
    levers,
    plot,
    summary,


onstart:
    knobs.restore_journal()  # what a run killed by SIGKILL left changed
    jobs.write_schedule(RESULTS, CONFIG["schedule_seed"], RUNS.values())


onsuccess:
    knobs.restore_journal()


onerror:
    knobs.restore_journal()


rule all:
    default_target: True
    input:
        get_final_outputs(),
        LEVERS_TABLES,
