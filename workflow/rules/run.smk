rule run_point:
    # One timed run, one record. It runs inside Snakemake's process
    # (`run:` with force-use-threads, profiles/default), so cppyy and the
    # build load once per sweep; the measuring is done by the benchmark
    # executable, a process of its own. bench_slot (limited to 1 in
    # profiles/default) keeps timed runs from sharing the machine.
    input:
        library=rules.build.output.library,
        boot=get_vm_boot,
    output:
        f"{RESULTS}/{{experiment}}/{{point}}/{{repetition}}.json",
    log:
        f"{RESULTS}/logs/{{experiment}}/{{point}}/{{repetition}}.log",
    priority: get_priority
    resources:
        bench_slot=get_bench_slot,
    params:
        cxxflags=CONFIG["cxxflags"],
        build_log=rules.build.log[0],
        point=get_point,
        ids=get_ids,
    run:
        jobs.run_point(
            output[0],
            log[0],
            params.point,
            params.ids,
            input.library,
            params.cxxflags,
            params.build_log,
            input.boot[0] if input.boot else None,
        )


rule run_vm_boot:
    # Every run of one (vm_kernel, vm_nodes) in one VM boot (cowsnap.measure.vm):
    # a record per run in the boot's folder, which run_point copies. One VM
    # at a time, never beside a timed run: it takes the bench_slot too.
    input:
        library=rules.build.output.library,
    output:
        directory(f"{RESULTS}/vm/{{boot}}"),
    log:
        f"{RESULTS}/logs/vm/{{boot}}.log",
    conda:
        "../../envs/cowsnap.yaml"
    resources:
        bench_slot=1,
    params:
        cxxflags=CONFIG["cxxflags"],
        build_log=rules.build.log[0],
        runs=get_boot_runs,
    script:
        "../scripts/run_vm_boot.py"
