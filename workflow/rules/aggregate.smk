rule aggregate:
    input:
        records=get_records,
        missing=get_missing_note,
    output:
        **{name: f"{RESULTS}/{{experiment}}/{name}.csv" for name in aggregate.TABLES},
    log:
        f"{RESULTS}/logs/{{experiment}}/aggregate.log",
    conda:
        "../../envs/cowsnap.yaml"
    params:
        # Each lever's reference snapshot: the analysis's, not the runs'.
        references=lambda wildcards: grid.references(CONFIG, wildcards.experiment),
    script:
        "../scripts/aggregate.py"


checkpoint more_runs:
    # Enough runs to answer (an experiment's precision): after the planned
    # runs and each round of more, the points whose comparison is still
    # open get `step` more runs, with their baselines (cowsnap.analyse.precision).
    input:
        get_round_records,
    output:
        f"{RESULTS}/{{experiment}}/more/{{round}}.json",
    log:
        f"{RESULTS}/logs/{{experiment}}/more-{{round}}.log",
    conda:
        "../../envs/cowsnap.yaml"
    params:
        precision=lambda wildcards: CONFIG["experiments"][wildcards.experiment]["precision"],
        references=lambda wildcards: grid.references(CONFIG, wildcards.experiment),
    script:
        "../scripts/more_runs.py"
