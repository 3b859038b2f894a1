# Watch points (method=watch): a program of the user's run under cowsnap
# watch while its own snapshot is taken (cowsnap.measure.watch.point); one
# record per run in the benchmark's layout, read into the same tables. The
# run's record path is run_point's too: for a watch point this rule makes it.
WATCH_POINTS = sorted({run.point_id for run in RUNS.values() if run.point["method"] == "watch"})


ruleorder: watch_point > run_point


rule watch_point:
    # Never beside a timed run or another watch point: it takes the bench_slot.
    # A script, so a process of its own: the processes it starts die with it
    # (PR_SET_PDEATHSIG follows the thread that started them), and SIGTERM
    # stops them through its own handlers.
    input:
        library=rules.build.output.library,
    output:
        f"{RESULTS}/{{experiment}}/{{point}}/{{repetition}}.json",
    log:
        f"{RESULTS}/logs/{{experiment}}/{{point}}/{{repetition}}.log",
    wildcard_constraints:
        point="|".join(WATCH_POINTS) or "(?!)",  # (?!): no point when there is none
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
        "../scripts/watch_point.py"
