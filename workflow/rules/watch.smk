# Watch points (method=watch): a program of the user's run under cowsnap
# watch while its own snapshot is taken (cowsnap.measure.watch.point); one
# record per run in the benchmark's layout, read into the same tables. The
# run's record path is run_point's too: for a watch point this rule makes it.
from cowsnap.analyse.watch import levers as pool_levers

# A watch point in a VM runs in its kernel's boot (run_vm_boot), as a benchmark point does.
WATCH_POINTS = sorted({run.point_id for run in RUNS.values() if run.point["method"] == "watch" and not vm_boot_of(run)})


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


# The pool experiment's levers (examples/ run as watch points): the numbers
# `cowsnap watch` cites for a pool of Python workers, from this sweep's
# records (cowsnap.analyse.watch.levers). The shipped
# cowsnap/analyse/watch/levers.csv is such a table: tests/test_pool.py holds
# it equal to the one its sweep's stored records give.
LEVERS_TABLES = [f"{RESULTS}/{pool_levers.EXPERIMENT}/levers.csv"] if pool_levers.EXPERIMENT in EXPERIMENTS else []


rule levers:
    input:
        get_records,
    output:
        f"{RESULTS}/{{experiment}}/levers.csv",
    log:
        f"{RESULTS}/logs/{{experiment}}/levers.log",
    wildcard_constraints:
        experiment=pool_levers.EXPERIMENT,
    conda:
        "../../envs/cowsnap.yaml"
    script:
        "../scripts/levers.py"
