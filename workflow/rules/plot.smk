rule plot:
    input:
        runs=rules.aggregate.output.runs,
        sharing=rules.aggregate.output.sharing,
    output:
        png=f"{RESULTS}/figures/{{experiment}}-{{figure}}.png",
        pdf=f"{RESULTS}/figures/{{experiment}}-{{figure}}.pdf",
    log:
        f"{RESULTS}/logs/{{experiment}}/plot-{{figure}}.log",
    conda:
        "../../envs/cowsnap.yaml"
    script:
        "../scripts/plot.py"
