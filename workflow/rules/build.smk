rule build:
    # Once per source hash, flags, compiler and cppyy version (the key).
    input:
        native.source_files(),
    output:
        library=f"{RESULTS}/build/{BUILD_KEY}/{native.LIBRARY}",
    log:
        f"{RESULTS}/logs/build-{BUILD_KEY}.log",
    conda:
        "../../envs/cowsnap.yaml"
    params:
        cxxflags=CONFIG["cxxflags"],
    script:
        "../scripts/build.py"
