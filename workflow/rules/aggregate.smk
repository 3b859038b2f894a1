rule aggregate:
    input:
        records=get_records,
        missing=get_missing_note,
    output:
        runs=f"{RESULTS}/{{experiment}}/runs.csv",
        points=f"{RESULTS}/{{experiment}}/points.csv",
        ratios=f"{RESULTS}/{{experiment}}/ratios.csv",
        sharing=f"{RESULTS}/{{experiment}}/sharing.csv",
    log:
        f"{RESULTS}/logs/{{experiment}}/aggregate.log",
    conda:
        "../../envs/cowsnap.yaml"
    script:
        "../scripts/aggregate.py"
