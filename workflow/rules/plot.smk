rule plot:
    input:
        **{name: getattr(rules.aggregate.output, name) for name in aggregate.TABLES},
    output:
        png=report(
            f"{RESULTS}/figures/{{experiment}}-{{figure}}.png",
            caption="../report/figure.rst",
            category="{experiment}",
            labels={"experiment": "{experiment}", "figure": "{figure}"},
        ),
        pdf=f"{RESULTS}/figures/{{experiment}}-{{figure}}.pdf",
        caption=f"{RESULTS}/figures/{{experiment}}-{{figure}}.caption.txt",
        sidecar=f"{RESULTS}/figures/{{experiment}}-{{figure}}.json",
    log:
        f"{RESULTS}/logs/{{experiment}}/plot-{{figure}}.log",
    conda:
        "../../envs/cowsnap.yaml"
    params:
        description=get_description,
        report_description=get_report_description,
        config_hash=CONFIG_HASH,
    script:
        "../scripts/plot.py"


rule summary:
    input:
        runs=expand(rules.aggregate.output.runs, experiment=EXPERIMENTS),
        points=expand(rules.aggregate.output.points, experiment=EXPERIMENTS),
        ratios=expand(rules.aggregate.output.ratios, experiment=EXPERIMENTS),
        scaling=expand(rules.aggregate.output.scaling, experiment=EXPERIMENTS),
        comparisons=expand(rules.aggregate.output.comparisons, experiment=EXPERIMENTS),
        model=expand(rules.aggregate.output.model, experiment=EXPERIMENTS),
    output:
        report(f"{RESULTS}/summary.md", caption="../report/summary.rst", category="Summary"),
    log:
        f"{RESULTS}/logs/summary.log",
    conda:
        "../../envs/cowsnap.yaml"
    script:
        "../scripts/summary.py"
