rule run_point:
    # One timed run: one process, one record. bench_slot (limited to 1 in
    # profiles/default) keeps timed runs from sharing the machine.
    input:
        library=rules.build.output.library,
    output:
        f"{RESULTS}/{{experiment}}/{{point}}/{{repetition}}.json",
    log:
        f"{RESULTS}/logs/{{experiment}}/{{point}}/{{repetition}}.log",
    priority: get_priority
    conda:
        "../../envs/cowsnap.yaml"
    resources:
        bench_slot=1,
    params:
        cxxflags=CONFIG["cxxflags"],
        build_log=rules.build.log[0],
        point=get_point,
        ids=get_ids,
    script:
        "../scripts/run_point.py"
