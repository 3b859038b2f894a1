# cowsnap: what a fork()-based memory snapshot costs a running program.
# config -> grid of runs -> build (cppyy) -> one timed job per run -> tables -> figures
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/build.smk"
include: "workflow/rules/run.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/plot.smk"


# On a cluster only the timed runs are submitted; the rest run where
# Snakemake runs.
localrules:
    all,
    build,
    aggregate,
    plot,
    summary,


onsuccess:
    knobs.restore_journal()


onerror:
    knobs.restore_journal()


rule all:
    default_target: True
    input:
        get_final_outputs(),
