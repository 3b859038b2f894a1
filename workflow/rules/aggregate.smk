rule aggregate:
    input:
        get_records,
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
