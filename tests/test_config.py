"""A bad config stops with one message naming the key and what is allowed."""

import pytest

from cowsnap.plan import config, grid, threads
from cowsnap.plan.config import ConfigError


def one_experiment(**experiment):
    return {"experiments": {"e": experiment}}


def error_of(raw):
    with pytest.raises(ConfigError) as caught:
        grid.expand(config.validate(raw))
    return str(caught.value)


def test_unknown_key_names_it_and_the_allowed_keys():
    message = error_of(one_experiment(base={"sise_mib": 64}))
    assert "config.experiments.e.base" in message
    assert "'sise_mib'" in message
    assert "size_mib" in message and "writers" in message


def test_bad_value_names_key_and_allowed_values():
    message = error_of(one_experiment(matrix={"method": ["fork", "vfork"]}))
    assert "config.experiments.e.matrix.method[1]" in message
    assert "'vfork'" in message
    assert "none, fork, uffd, stop" in message


def test_bad_backing_lists_the_backings():
    message = error_of(one_experiment(base={"backing": "huge"}))
    assert "base.backing" in message and "hugetlb-2m" in message


def test_missing_required_experiments():
    assert "missing required key 'experiments'" in error_of({"results": "r"})


@pytest.mark.parametrize(
    ("base", "key"),
    [({"size_mib": 0}, "size_mib"), ({"writers": -1}, "writers"), ({"writers": "two"}, "writers")],
)
def test_wrong_numbers_and_types_name_the_key(base, key):
    assert f"base.{key}" in error_of(one_experiment(base=base))


def test_empty_matrix_and_empty_axis():
    assert "must not be empty" in error_of(one_experiment(matrix={}))
    assert "matrix.writers: must not be empty" in error_of(one_experiment(matrix={"writers": []}))


def test_batch_larger_than_array():
    message = error_of(one_experiment(base={"size_mib": 1, "batch_kib": 2048}))
    assert "batch_kib=2048" in message and "size_mib" in message


def test_array_not_whole_huge_pages():
    message = error_of(one_experiment(base={"size_mib": 3, "backing": "hugetlb-2m", "batch_kib": 2048}))
    assert "size_mib=3 is not a whole number of 2048 KiB pages of backing=hugetlb-2m" in message


def test_batch_not_whole_huge_pages():
    message = error_of(one_experiment(base={"backing": "hugetlb-2m", "batch_kib": 1024}))
    assert "batch_kib=1024" in message and "hugetlb-2m" in message


def test_hold_writers_after_child_is_refused():
    message = error_of(one_experiment(matrix={"hold": ["copy", "writers"], "start": ["with_child", "after_child"]}))
    assert "hold=writers" in message and "start=after_child" in message


def test_duplicate_experiment_names(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("experiments:\n  a: {}\n  a: {}\n")
    with pytest.raises(ConfigError, match="'a' appears twice"):
        config.load(path)


def test_not_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("experiments: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(path)


def test_defaults_are_filled():
    done = config.validate(one_experiment())
    experiment = done["experiments"]["e"]
    assert experiment["repetitions"] == 1
    assert experiment["base"] == config.point_defaults()
    assert done["results"] == "results"


def test_shipped_configs_are_valid():
    for path in sorted(config.SCHEMA_PATH.parents[2].glob("config/*.yaml")):
        assert grid.expand(config.load(path)), path


@pytest.mark.parametrize("vm_kernel", ["host", "6.1", "6.12", "6.1.0-9-amd64", "6.12.9+deb12-amd64", "6.18.44-fc-v1"])
def test_vm_kernel_takes_host_a_series_or_a_release_as_given(vm_kernel):
    """Kept as written: the planner does not look up installed kernels."""
    (run,) = grid.expand(config.validate(base(vm_kernel=vm_kernel)))
    assert run.point["vm_kernel"] == vm_kernel


def test_too_many_threads():
    message = error_of(one_experiment(base={"writers": 100_000}))
    assert "base.writers" in message and "4096" in message


@pytest.mark.parametrize("spec", ["bind:x", "interleave", "preferred:0-1", "node:0"])
def test_bad_numa_spec_lists_the_forms(spec):
    message = error_of(one_experiment(base={"numa_mem": spec}))
    assert "base.numa_mem" in message and "interleave:<nodes|all>" in message


def test_hugetlb_size_not_offered():
    message = error_of(one_experiment(base={"backing": "hugetlb-16m"}))
    assert "base.backing" in message and "hugetlb-1g" in message


def test_baseline_that_is_not_a_point():
    message = error_of(one_experiment(baseline={"method": "none"}, matrix={"method": ["fork", "uffd"]}))
    assert "its baseline" in message and "method=none" in message


def test_unknown_top_level_key_and_list_matrix():
    assert "unknown key 'experiment'" in error_of({"experiment": {}, "experiments": {"e": {}}})
    runs = grid.expand(config.validate(one_experiment(matrix=[{"method": ["none"]}, {"writers": [3]}])))
    auto = threads.resolve({"writers": "auto"})["writers"]  # the default: sized to this machine
    assert sorted((r.point["method"], r.point["writers"]) for r in runs) == [("fork", 3), ("none", auto)]


def test_snakemake_reports_a_config_error(tmp_path):
    import subprocess
    import sys

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("experiments:\n  e: {base: {method: vfork}}\n")
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(config.SCHEMA_PATH.parents[2] / "Snakefile"),
         "--cores", "1", "--dry-run"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0
    assert "config.experiments.e.base.method: 'vfork' is not allowed; allowed values: none, fork, uffd, stop" in (
        done.stdout + done.stderr
    )
    assert not (tmp_path / "results").exists()


def base(**point):
    return one_experiment(base=point)


# The pool example's arguments (config/config.yaml's pool experiment).
POOL = "--items 200000 --ready-file ready --go-file go --end-file end"


def with_results(path):
    return {"results": path, "experiments": {"e": {}}}


# Every hole a value could slip through: (config, the key the message names,
# what it says is allowed).
BAD_VALUES = {
    "whole-number float for an integer": (base(writers=2.0), "base.writers", "an integer from 1 to 4096"),
    "float for a size": (base(size_mib=64.0), "base.size_mib", "an integer from 1 to 16777216"),
    "boolean for an integer": (base(copiers=True), "base.copiers", "an integer from 1 to 4096"),
    "array beyond any machine": (base(size_mib=10**9), "base.size_mib", "to 16777216"),
    "batch beyond any machine": (base(batch_kib=2**40), "base.batch_kib", "to 1073741824"),
    "sharing interval overflow": (base(sharing_interval_ms=10**20), "base.sharing_interval_ms", "0 to 60000"),
    "memcpy buffer beyond any machine": (base(memcpy_mib=10**7), "base.memcpy_mib", "0 to 65536"),
    "timeout nan": (base(timeout_s=float("nan")), "base.timeout_s", "a finite number above 0, at most 86400"),
    "timeout infinite": (base(timeout_s=float("inf")), "base.timeout_s", "a finite number"),
    "timeout beyond a day": (base(timeout_s=10**6), "base.timeout_s", "at most 86400"),
    "timeout zero": (base(timeout_s=0), "base.timeout_s", "above 0"),
    "hugetlb pool float": (base(hugetlb_pool=2.0), "base.hugetlb_pool", "auto or an integer"),
    "hugetlb pool beyond any machine": (base(hugetlb_pool=10**12), "base.hugetlb_pool", "auto or an integer"),
    "repetitions beyond reason": (one_experiment(repetitions=100_000_000), "repetitions", "1 to 1000"),
    "matrix beyond reason": (
        one_experiment(matrix={"writers": list(range(1, 4001)), "copiers": list(range(1, 4001))}),
        "config.experiments",
        "at most 20000",
    ),
    "seed negative": ({"schedule_seed": -1, "experiments": {"e": {}}}, "config.schedule_seed", "0 to 4294967295"),
    "seed by its old name": (
        {"seed": 5, "experiments": {"e": {}}},
        "config: unknown key 'seed' (now schedule_seed)",
        "schedule_seed",
    ),
    "numa bind to nothing": (base(numa_mem="bind:-"), "numa_mem", "bind:<nodes>"),
    "numa open range": (base(numa_mem="bind:0-"), "numa_mem", "bind:<nodes>"),
    "numa reversed range": (base(numa_mem="bind:3-1"), "numa_mem", "bind:<nodes>"),
    "numa empty item": (base(numa_mem="interleave:0,,1"), "numa_mem", "interleave:<nodes|all>"),
    "numa node beyond Linux": (base(numa_mem="bind:0-5000"), "numa_mem", "nodes 0 to 1023"),
    "numa preferred list": (base(numa_mem="preferred:0-1"), "numa_mem", "preferred:<node>"),
    "writers on a node beyond Linux": (base(numa_writers="node:5000"), "numa_writers", "node:0 to node:1023"),
    "results at the root": (with_results("/"), "config.results", "inside the working folder"),
    "results in a system folder": (with_results("/etc/cowsnap"), "config.results", "outside the system folders"),
    "results in /usr": (with_results("//usr/../usr/lib/x"), "config.results", "outside the system folders"),
    "results under /proc": (with_results("/proc/self"), "config.results", "outside the system folders"),
    "results empty": (with_results(""), "config.results", "must not be empty"),
    "results blank": (with_results("  "), "config.results", "inside the working folder"),
    "results in home by tilde": (with_results("~/results"), "config.results", "no ~"),
    "results with braces": (with_results("results/{experiment}"), "config.results", "no braces"),
    "old dest name": (base(dest="prefork"), "base.dest", "zeroed, fresh"),
    "old dest name child": (base(dest="child"), "base.dest", "zeroed, fresh"),
    "alloc unknown": (base(alloc="malloc"), "base.alloc", "mmap, new"),
    "inject unknown": (base(inject="wipe"), "base.inject", "none, wipe-on-fork"),
    "release without a child": (base(method="uffd", release="none"), "release=none", "method fork only"),
    "populate after exit without a child": (
        base(method="stop", populate="write-after-exit"),
        "populate=write-after-exit",
        "method fork only",
    ),
    "timeout without a child": (base(method="none", timeout_s=5), "timeout_s=5", "method fork or watch only"),
    "dest without a snapshot": (base(method="none", dest="fresh"), "dest=fresh", "method fork or uffd or stop"),
    "alloc new with uffd": (base(method="uffd", alloc="new"), "alloc=new", "method none or fork or stop"),
    "alloc new on hugetlb": (base(alloc="new", backing="hugetlb-2m"), "alloc=new", "backing 4k or thp"),
    "dontfork on a fresh destination": (base(dest="fresh", dontfork=True), "dontfork=true", "dest zeroed"),
    "pool without hugetlb": (base(hugetlb_pool=8), "hugetlb_pool=8", "backing hugetlb-2m or hugetlb-1g"),
    "description too long": (one_experiment(description="x" * 5000), "description", "allowed values"),
    "watch key on a benchmark point": (base(watch_command="x"), "watch_command=x", "method watch only"),
    "benchmark key on a watch point": (
        base(method="watch", watch_command="x", size_mib=256),
        "size_mib=256",
        "method none or fork or uffd or stop only",
    ),
    "a watch point's VM nodes on the host": (
        base(method="watch", watch_command="x", vm_nodes=2),
        "vm_nodes=2 applies to none of its points (method=watch,vm_kernel=host)",
        "vm_kernel other than host only",
    ),
    "kernel: a major version alone": (base(vm_kernel="6"), "base.vm_kernel", "a kernel series in quotes ('6.1'"),
    "kernel: a package name": (base(vm_kernel="linux-image-6.1"), "base.vm_kernel", "or an exact kernel release"),
    "kernel: a series cut short": (base(vm_kernel="6.1."), "base.vm_kernel", "a kernel series"),
    "kernel: a path": (base(vm_kernel="6.1/../x"), "base.vm_kernel", "a kernel series"),
    "kernel: a series as a YAML number": (
        one_experiment(matrix={"vm_kernel": ["host", 6.1]}),
        "matrix.vm_kernel[1]: 6.1 is a number",
        "write it in quotes; allowed values: host (run on this machine), a kernel series",
    ),
    "watch point without its program": (base(method="watch"), "method=watch needs watch_command", "a command line"),
    "command with an open quote": (base(method="watch", watch_command="a 'b"), "watch_command=", "quotes closed"),
    "command of another type": (
        base(method="watch", watch_command=5),
        "base.watch_command",
        "a command line (a string) or an argv list",
    ),
    "command with an empty word": (base(method="watch", watch_command=["a", ""]), "watch_command[1]", "not be empty"),
    "watch time negative": (base(method="watch", watch_command="x", watch_after_s=-1), "watch_after_s", "0 to 3600"),
    "load lead infinite": (
        base(method="watch", watch_command="x", load_lead_s=float("inf")),
        "base.load_lead_s",
        "a finite number",
    ),
    "smoke size negative": ({"smoke_mib": -1, "experiments": {"e": {}}}, "config.smoke_mib", "0 to 1048576"),
    # Checks that could be walked around, and values that change nothing.
    "results climbing to a system folder": (
        with_results("../" * 20 + "etc/cowsnap"),
        "config.results",
        "resolves to '/etc/cowsnap'",
    ),
    "precision that can never add a run": (
        one_experiment(repetitions=3, baseline={"method": "none"}, matrix={"method": ["none", "fork"]},
                       precision={"max_repetitions": 3}),
        "precision.max_repetitions",
        "more than repetitions",
    ),
    "precision without a baseline": (
        one_experiment(repetitions=3, precision={"max_repetitions": 5}),
        "config.experiments.e.precision",
        "with a reference or a baseline",
    ),
    "run cap at precision's maximum": (
        one_experiment(repetitions=1, baseline={"method": "none"}, precision={"max_repetitions": 1000},
                       matrix={"method": ["none", "fork"], "writers": list(range(1, 101))}),
        "config.experiments: up to 200000 runs",
        "at most 20000",
    ),
    "latency span larger than a writer writes": (
        base(size_mib=8, writers=1, write_latency_kib=65536),
        "write_latency_kib=65536",
        "at most 8192",
    ),
    "baseline key its method ignores": (
        one_experiment(baseline={"method": "none", "release": "none"}, matrix={"method": ["none", "fork"]}),
        "baseline: release=none does not apply to the baseline point",
        "keys that apply to the baseline's method",
    ),
    "a NUMA node the VM does not have": (
        base(vm_kernel="6.12", vm_nodes=2, numa_mem="bind:3"),
        "NUMA node 3, which a VM of vm_nodes=2",
        "raise vm_nodes",
    ),
    "an mTHP size that is no folio size": (base(backing="mthp-48k"), "backing=mthp-48k", "a power of two"),
    "writes for a time and passes both": (base(write_s=1, passes=3), "write_s=1 with passes=3", "passes 1"),
    "touched_during without a child": (
        base(method="uffd", touched_during=0.5),
        "touched_during=0.5",
        "method fork with start with_child",
    ),
    # The fifth round: runs that would take days or cannot end, labels that
    # lie, commands that cannot run, precision that adds nothing, hard reading.
    "a run of days at a rate written as MiB/s": (
        base(size_mib=128, writers=1, write_rate=100),
        "config.experiments.e.base.write_rate: 100 makes each run take at least 46 h",
        "within a day",
    ),
    "passes beyond a day": (
        base(size_mib=65536, writers=1, passes=1_000_000, method="none"),
        "config.experiments.e.base.passes: 1000000 makes each run take at least",
        "within a day",
    ),
    "an mTHP folio larger than the array": (
        base(size_mib=1, batch_kib=1024, backing="mthp-2048k"),
        "config.experiments.e.base.backing: mthp-2048k: a 2048 KiB folio does not fit a 1 MiB array",
        "size_mib 2 or more",
    ),
    "a THP larger than the array": (
        base(size_mib=1, batch_kib=1024, backing="thp"),
        "config.experiments.e.base.backing: thp: a 2048 KiB huge page",
        "size_mib 2 or more",
    ),
    "a child held past its timeout": (
        base(hold="writers", write_s=700),
        "config.experiments.e.base.timeout_s (the default): 600 s is shorter than the child must live (write_s=700)",
        "timeout_s above 700",
    ),
    "a child waiting past its timeout for a share at a rate": (
        base(size_mib=64, writers=1, touched_during=0.5, write_rate=1000, timeout_s=60),
        "config.experiments.e.base.timeout_s: 60 s is shorter than the child must live (write_rate=1000)",
        "timeout_s above 4194.3",
    ),
    "a VM point past what its boot allows": (
        base(vm_kernel="6.1", write_s=1300),
        "config.experiments.e.base.write_s: 1300",
        "in a VM each point is killed after 1200 s",
    ),
    "warming more than the VM has": (
        base(vm_kernel="6.1", size_mib=16, warm_mib=4096),
        "config.experiments.e.base.warm_mib: 4096 MiB is more memory than the VM it runs in has (1024 MiB",
        "or at most 512",
    ),
    "a huge page pool beyond the machine": (
        base(backing="hugetlb-2m", hugetlb_pool=16_777_216),
        "config.experiments.e.base.hugetlb_pool: 16777216 huge pages",
        "more than this machine has",
    ),
    "precision with a baseline and no ratio_half_width or reference": (
        one_experiment(repetitions=3, baseline={"method": "none"}, matrix={"method": ["none", "fork"]},
                       precision={"max_repetitions": 5}),
        "config.experiments.e.precision: adds runs for a lever",
        "a reference with at least one lever, or ratio_half_width with a baseline",
    ),
    "precision whose reference has no lever": (
        one_experiment(repetitions=3, reference={"method": "fork"}, matrix={"method": ["none", "fork"]},
                       precision={"max_repetitions": 5}),
        "its reference has no lever",
        "a reference with at least one lever",
    ),
    "ratio_half_width without a baseline": (
        one_experiment(repetitions=3, reference={"method": "fork"}, matrix={"method": ["fork", "uffd"]},
                       precision={"max_repetitions": 5, "ratio_half_width": 0.05}),
        "config.experiments.e.precision.ratio_half_width: 0.05",
        "with a baseline other than the points it compares",
    ),
    "ratio_half_width over runs that are not timed": (
        one_experiment(repetitions=3, baseline={"release": "munmap"}, base={"sharing_interval_ms": 20},
                       matrix={"release": ["munmap", "none"]},
                       precision={"max_repetitions": 5, "ratio_half_width": 0.05}),
        "config.experiments.e.precision.ratio_half_width: 0.05",
        "such runs are not timed",
    ),
    "precision at the default repetitions": (
        one_experiment(reference={"method": "fork"}, matrix={"method": ["fork", "uffd"]},
                       precision={"max_repetitions": 9}),
        "config.experiments.e.repetitions: 1 is too few for precision",
        "a lever is compared with its reference from 3 rounds on, so no round could add a run; allowed: "
        "repetitions 3 or more",
    ),
    "ratio_half_width over one run": (
        one_experiment(baseline={"method": "none"}, matrix={"method": ["none", "fork"]},
                       precision={"max_repetitions": 9, "ratio_half_width": 0.05}),
        "config.experiments.e.repetitions: 1 is too few for precision",
        "allowed: repetitions 2 or more",
    ),
    "ratio_half_width as a percentage": (
        one_experiment(repetitions=3, baseline={"method": "none"}, matrix={"method": ["none", "fork"]},
                       precision={"max_repetitions": 5, "ratio_half_width": 5}),
        "config.experiments.e.precision.ratio_half_width: 5 is not allowed (a fraction: 0.05 is 5%)",
        "above 0, below 1",
    ),
    "a misspelt pool example": (
        base(method="watch", watch_command=f"sh -c 'exec python3 \"$COWSNAP_EXAMPLES\"/pool_gcfreeze.py {POOL}'"),
        "config.experiments.e.base.watch_command",
        "does not exist, so every run fails; allowed: an existing file (did you mean pool_gc_freeze.py?",
    ),
    "a pool example without sh -c": (
        base(method="watch", watch_command=f"python3 \"$COWSNAP_EXAMPLES\"/pool_objects.py {POOL}"),
        "config.experiments.e.base.watch_command",
        "$COWSNAP_EXAMPLES (in '$COWSNAP_EXAMPLES/pool_objects.py') is shell syntax, and a command runs without "
        "a shell",
    ),
    "a pipe without a shell": (
        base(method="watch", watch_command="my-server | tee log"),
        "config.experiments.e.base.watch_command",
        "'|' is shell syntax",
    ),
    "a relative program": (
        base(method="watch", watch_command="./watchprog 64"),
        "config.experiments.e.base.watch_command: './watchprog 64': the program ./watchprog is a relative path",
        "write its absolute path",
    ),
    "a relative script": (
        base(method="watch", watch_command=["python3", "serve.py"]),
        "the script serve.py is a relative path",
        "write its absolute path",
    ),
    "a program in sh -c that is not installed": (
        base(method="watch", watch_command="sh -c 'exec cowsnap-no-such-program --serve'"),
        "in sh -c, the program cowsnap-no-such-program is not installed here",
        "every run fails",
    ),
    "a variable in sh -c that is not set": (
        base(method="watch", watch_command="sh -c 'exec python3 \"$COWSNAP_EXAMPLE\"/pool_flat.py'"),
        "$COWSNAP_EXAMPLE is not set where the command runs",
        "a variable that is set",
    ),
    "a look-alike character in a key": (
        one_experiment(matrix={"p\u0430ttern": ["random"]}),
        "config.experiments.e.matrix: unknown key 'p\u0430ttern' (not ASCII: '\u0430' at position 2 is U+0430 "
        "CYRILLIC SMALL LETTER A; did you mean 'pattern'?)",
        "allowed keys: size_mib",
    ),
    "a look-alike character in a value": (
        base(pattern="bl\u043ecked"),
        "U+043E CYRILLIC SMALL LETTER O; did you mean 'blocked'?",
        "allowed values: interleaved, blocked",
    ),
    "a single value where an axis wants a list": (
        one_experiment(matrix={"writers": 2}),
        "config.experiments.e.matrix.writers: 2 is not a list (a single value is written as a list of one: [2])",
        "allowed values: a list [...] of: an integer from 1 to 4096 or auto",
    ),
    "a mapping where exclude wants a list": (
        one_experiment(matrix={"writers": [1, 2]}, exclude={"writers": 2}),
        "config.experiments.e.exclude: {'writers': 2} is not a list",
        "a list [...] of partial points",
    ),
}  # fmt: skip


@pytest.mark.parametrize("raw, key, allowed", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_value_battery(raw, key, allowed):
    message = error_of(raw)
    assert key in message and allowed in message, message


ALIAS_BOMB = (
    "a: &a ["
    + ",".join(['"xxxxxxxxxx"'] * 10)
    + "]\n"
    + "".join(
        f"{name}: &{name} [" + ",".join([f"*{previous}"] * 10) + "]\n"
        for previous, name in zip("abcdef", "bcdefg", strict=True)
    )
    + "experiments:\n  e:\n    description: *g\n"
)


@pytest.mark.parametrize(
    "config_text",
    [
        "experiments:\n  e: {base: {writers: 2.0}}\n",
        "results: /\nexperiments:\n  e: {}\n",
        "experiments:\n  e: {base: {numa_mem: 'bind:3-1'}}\n",
        "experiments:\n  e: {base: {method: uffd, hold: writers}}\n",
        "experiments:\n  e: {}\n  e: {}\n",
        "experiments:\n  e: {base: {method: watch, watch_command: x, writers: 4}}\n",
        "results: " + "../" * 20 + "etc/cowsnap\nexperiments:\n  e: {}\n",
        "experiments:\n  e: {base: {size_mib: 8, writers: 1, write_latency_kib: 65536}}\n",
        "experiments:\n  e: {repetitions: 1, precision: {max_repetitions: 1000}, baseline: {method: none},\n"
        "      matrix: {method: [none, fork], writers: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]}}\n",
        "experiments:\n  e: {base: {vm_kernel: '6.12', vm_nodes: 2, numa_mem: 'bind:3'}}\n",
        "experiments:\n  e: {base: {backing: mthp-48k}}\n",
        ALIAS_BOMB,
    ],
    ids=[
        "float",
        "results",
        "numa",
        "not applicable",
        "twice",
        "watch and benchmark keys",
        "climbing results",
        "span",
        "precision cap",
        "vm node",
        "folio size",
        "alias bomb",
    ],
)
def test_dry_run_refuses_without_a_traceback(tmp_path, config_text):
    done, output = dry_run(tmp_path, config_text)
    assert done.returncode != 0
    named = "appears twice (" in output or "expands to" in output  # errors of the file itself name it
    assert "cowsnap: config" in output or (named and "bad.yaml" in output), output
    assert "Traceback" not in output and 'File "' not in output, output
    assert len(output) < 10_000, len(output)


def dry_run(folder, config_text, *args):
    """snakemake --dry-run of config_text (as bad.yaml) in folder: (the
    finished process, its output); within 10 s, writing nothing under results/."""
    import subprocess
    import sys
    import time

    (folder / "bad.yaml").write_text(config_text)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(config.SCHEMA_PATH.parents[2] / "Snakefile"),
         "--cores", "1", "--dry-run", "--configfile", "bad.yaml", *args],
        cwd=folder, capture_output=True, text=True,
    )  # fmt: skip
    assert time.monotonic() - started < 10
    assert not (folder / "results").exists()
    return done, done.stdout + done.stderr


WATCHED = "      method: watch\n      ready_command: test -e ready\n      snapshot_command: touch go\n"
# The fifth round's faults, written as a user writes them: (the config, what
# the refusal must name).
FIFTH_ROUND = {
    "a run of days": ("experiments:\n  e: {base: {size_mib: 128, writers: 1, write_rate: 100}}\n",
                      "config.experiments.e.base.write_rate: 100 makes each run take at least 46 h"),
    "memory beyond the machine": pytest.param(
        "experiments:\n  e: {base: {size_mib: 256, warm_mib: 262144}}\n",
        "config.experiments.e.base.warm_mib: 262144 MiB is more memory than this machine has",
        marks=pytest.mark.skipif(grid.machine_memory_mib() >= 262144, reason="this machine has 256 GiB"),
    ),
    "a label that lies": ("experiments:\n  e: {base: {size_mib: 1, batch_kib: 1024, backing: mthp-2048k}}\n",
                          "config.experiments.e.base.backing: mthp-2048k: a 2048 KiB folio does not fit"),
    "a misspelt pool example": (
        f"experiments:\n  pool:\n    base:\n{WATCHED}      watch_command: sh -c 'exec python3 "
        f"\"$COWSNAP_EXAMPLES\"/pool_gcfreeze.py {POOL}'\n",
        "config.experiments.pool.base.watch_command",
    ),
    "a pool example without sh -c": (
        f"experiments:\n  pool:\n    base:\n{WATCHED}      watch_command: python3 "
        f"\"$COWSNAP_EXAMPLES\"/pool_objects.py {POOL}\n",
        "config.experiments.pool.base.watch_command",
    ),
    "a program beside the config": (
        f"experiments:\n  e:\n    base:\n{WATCHED}      watch_command: ./watchprog 64\n",
        "config.experiments.e.base.watch_command: './watchprog 64': the program ./watchprog is a relative path",
    ),
    "a child held past its timeout": (
        "experiments:\n  e: {base: {hold: writers, write_s: 700}}\n",
        "config.experiments.e.base.timeout_s (the default): 600 s is shorter than the child must live",
    ),
    "a child waiting past its timeout at a rate": (
        "experiments:\n  e: {base: {size_mib: 64, writers: 1, touched_during: 0.5, write_rate: 1000}}\n",
        "config.experiments.e.base.timeout_s (the default): 600 s is shorter than the child must live",
    ),
    "precision with nothing to add to": (
        "experiments:\n  e: {repetitions: 3, baseline: {method: none}, matrix: {method: [none, fork]},\n"
        "      precision: {max_repetitions: 9}}\n",
        "config.experiments.e.precision: adds runs for a lever",
    ),
    "ratio_half_width without a baseline": (
        "experiments:\n  e: {repetitions: 3, reference: {method: fork}, matrix: {method: [fork, uffd]},\n"
        "      precision: {max_repetitions: 9, ratio_half_width: 0.05}}\n",
        "config.experiments.e.precision.ratio_half_width: 0.05",
    ),
    "a reference without a lever": (
        "experiments:\n  e: {repetitions: 3, reference: {method: fork}, matrix: {method: [none, fork]},\n"
        "      precision: {max_repetitions: 9}}\n",
        "config.experiments.e.precision: adds runs for a lever",
    ),
    "precision at the default repetitions": (
        "experiments:\n  e: {reference: {method: fork}, matrix: {method: [fork, uffd]},\n"
        "      precision: {max_repetitions: 9}}\n",
        "config.experiments.e.repetitions: 1 is too few for precision",
    ),
    "ratio_half_width as a percentage": (
        "experiments:\n  e: {repetitions: 3, baseline: {method: none}, matrix: {method: [none, fork]},\n"
        "      precision: {max_repetitions: 9, ratio_half_width: 5}}\n",
        "config.experiments.e.precision.ratio_half_width: 5 is not allowed (a fraction: 0.05 is 5%)",
    ),
    "a look-alike character": ("experiments:\n  e: {matrix: {p\u0430ttern: [random]}}\n",
                               "'\u0430' at position 2 is U+0430 CYRILLIC SMALL LETTER A; did you mean 'pattern'?"),
    "a scalar for an axis": ("experiments:\n  e: {matrix: {writers: 2}}\n",
                             "config.experiments.e.matrix.writers: 2 is not a list"),
}  # fmt: skip


@pytest.mark.parametrize(("config_text", "named"), FIFTH_ROUND.values(), ids=FIFTH_ROUND.keys())
def test_the_fifth_round_is_refused_at_dry_run(tmp_path, config_text, named):
    (tmp_path / "watchprog").write_text("#!/bin/sh\n")
    done, output = dry_run(tmp_path, config_text)
    assert done.returncode != 0
    assert f"cowsnap: {named}" in output or named in output and "cowsnap: config" in output, output
    assert "Traceback" not in output and 'File "' not in output, output
    assert len(output) < 10_000, len(output)
    if "watchprog" in config_text:  # the advice names the program beside the config
        assert f"write its absolute path, {tmp_path.resolve() / 'watchprog'} (beside the config)" in output, output


@pytest.mark.parametrize("path", ["config/config.yaml", "config/paper.yaml"])
def test_the_dry_run_says_what_the_runs_cost_at_most(tmp_path, path):
    text = (config.SCHEMA_PATH.parents[2] / path).read_text()
    done, output = dry_run(tmp_path, text)
    assert done.returncode == 0, output[-3000:]
    runs = len(grid.expand(config.validate(config.read_yaml(tmp_path / "bad.yaml"))))
    bound = next(line for line in output.splitlines() if line.startswith(f"cowsnap: {runs} runs"))
    assert " of runs" in bound and "at most" in bound and "MiB of memory in one run" in bound, bound


def test_the_dry_run_warns_of_likely_mistakes_and_goes_on(tmp_path):
    done, output = dry_run(tmp_path, "experiments:\n  e: {base: {size_mib: 8, batch_kib: 2048, copiers: 8}}\n")
    assert done.returncode == 0, output[-3000:]
    assert (
        "cowsnap: warning: config.experiments.e.base.copiers: 8 copiers for the 4 batches of the array "
        "(size_mib=8 over batch_kib=2048): 4 copy nothing"
    ) in output, output


def test_keys_that_do_not_apply_take_their_defaults_before_the_id():
    # method crossed with fork-only keys: the uffd and none points are one point each
    runs = grid.expand(
        config.validate(one_experiment(matrix={"method": ["none", "uffd", "fork"], "release": ["munmap", "none"]}))
    )
    points = {r.point_id: r.point for r in runs}
    assert len(points) == 4
    assert {p["release"] for p in points.values() if p["method"] != "fork"} == {"munmap"}
    # One measurement, one id: the same point written either way.
    plain = grid.expand(config.validate(base(method="uffd")))[0]
    assert plain.point_id in points
    assert grid.normalise({**config.point_defaults(), "method": "none", "numa_copiers": "node:1"})["numa_copiers"] == (
        "any"
    )


def test_baseline_is_normalised_too():
    runs = grid.expand(
        config.validate(
            one_experiment(baseline={"method": "none"}, matrix={"method": ["none", "fork"]}, base={"hold": "writers"})
        )
    )
    fork = next(r for r in runs if r.point["method"] == "fork")
    none = next(r for r in runs if r.point["method"] == "none")
    assert fork.baseline_id == none.point_id and none.point["hold"] == "copy"


def test_applicability_table_names_point_keys():
    for entry, (methods, needs) in grid.APPLIES.items():
        key = entry[0] if isinstance(entry, tuple) else entry
        assert key in config.point_schema()
        assert set(methods) <= set(config.point_schema()["method"]["enum"])
        assert set(needs) <= set(config.point_schema())


def test_smoke_mode_scales_arrays_and_keeps_threads():
    raw = config.read_yaml(config.SCHEMA_PATH.parents[2] / "config" / "paper.yaml")
    full = grid.expand(config.validate(raw))
    smoke = grid.expand(config.validate({**raw, "smoke_mib": 16}))
    assert config.validate({**raw, "smoke_mib": 16})["results"] == "results/paper/smoke"
    assert {r.repetition for r in smoke} == {0}
    # Every point once; points that differ only in a size above smoke_mib
    # (fork_scaling's sizes) become one.
    scaled = {(r.experiment, grid.point_id(grid.scale(r.point, 16))) for r in full}
    assert len(smoke) == len(scaled) and {(r.experiment, r.point_id) for r in smoke} == scaled
    assert max(r.point["writers"] for r in smoke) == max(r.point["writers"] for r in full)
    for run in (r for r in smoke if r.point["method"] != "watch"):  # a watch point has no array
        page_mib = grid.PAGE_KIB.get(run.point["backing"], 4) // 1024 or 1
        assert run.point["size_mib"] <= max(16, page_mib)
        assert run.point["batch_kib"] <= run.point["size_mib"] * 1024


def test_an_error_quotes_a_bounded_part_of_the_value():
    message = error_of(one_experiment(description=["x" * 1000] * 1000))
    assert "config.experiments.e.description" in message
    assert len(message) < 1000, len(message)


def test_a_config_that_expands_past_the_limit_is_refused_in_seconds_naming_the_key(tmp_path):
    import time

    (tmp_path / "bomb.yaml").write_text(ALIAS_BOMB)  # 1 KiB that expands to 10^7 strings
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        config.read_yaml(tmp_path / "bomb.yaml")
    assert "config.experiments.e.description expands to 11,111,111 values" in str(caught.value)
    assert time.monotonic() - started < 10
    assert len(str(caught.value)) < 1000


def test_aliases_within_the_limit_are_read(tmp_path):
    (tmp_path / "ok.yaml").write_text("base: &b {size_mib: 8}\nexperiments:\n  e: {base: *b}\n  f: {base: *b}\n")
    assert config.read_yaml(tmp_path / "ok.yaml")["experiments"]["f"]["base"] == {"size_mib": 8}


def test_results_through_a_symlink_into_a_system_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(ConfigError, match="resolves to '/etc/cowsnap'"):
        config.check_output_path("link/cowsnap")
    config.check_output_path("results/../results")  # inside the working folder: fine


@pytest.mark.parametrize("command", (["run", "--out"], ["run", "--build-dir"], ["compare", "a", "b", "--out"],
                                     ["calibrate", "--out"], ["watch", "--out"]))  # fmt: skip
def test_every_output_option_is_checked_on_its_resolved_path(tmp_path, command):
    import subprocess
    import sys

    climbing = "../" * 20 + "etc/cowsnap"
    done = subprocess.run(
        [sys.executable, "-m", "cowsnap.cli", *command, climbing, *(["--", "true"] if command[0] == "watch" else [])],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "resolves to '/etc/cowsnap'" in done.stderr, done.stderr


def test_warming_beyond_the_machine_is_refused_an_array_beyond_it_is_skipped(monkeypatch):
    monkeypatch.setattr(grid, "machine_memory_mib", lambda: 24 * 1024)
    message = error_of(base(size_mib=256, warm_mib=262144))
    assert "config.experiments.e.base.warm_mib: 262144 MiB is more memory than this machine has (24576 MiB" in message
    assert "allowed: auto (what the point allocates, 1152 MiB), 0, or at most 24576" in message
    # An array larger than the machine is meaningful elsewhere: its runs skip it here, and the dry run says so.
    large = config.validate(base(size_mib=32768, method="none"))
    assert grid.expand(large)
    (warning,) = grid.warnings(large)
    assert warning.startswith("config.experiments.e.base.size_mib: the point needs 32896 MiB"), warning
    assert "more than this machine has (24576 MiB, MemTotal): its runs are skipped here" in warning


@pytest.mark.parametrize(
    ("point", "warned"),
    [
        ({"size_mib": 8, "batch_kib": 2048, "copiers": 8}, "base.copiers: 8 copiers for the 4 batches"),
        ({"size_mib": 1024, "timeout_s": 60}, "base.timeout_s: 60 s leaves less than twice the child's bound"),
        ({"size_mib": 128, "writers": 1, "write_rate": 1000, "method": "none"},
         "base.write_rate: 1000: each run takes at least 4 h 40 min"),
        ({"method": "watch", "watch_command": "cowsnap-no-such-program --serve"},
         "base.watch_command: cowsnap-no-such-program (watch_command) is not installed here (not on PATH): the "
         "point's runs are skipped, with the reason"),
    ],
)  # fmt: skip
def test_likely_mistakes_are_warnings_naming_the_key(point, warned):
    checked = config.validate(base(**point))
    assert grid.expand(checked)  # not refused
    assert any(warned in line for line in grid.warnings(checked)), grid.warnings(checked)


def test_the_shipped_configs_warn_of_nothing_a_user_must_fix():
    checked = config.load(config.SCHEMA_PATH.parents[2] / "config" / "config.yaml")
    kinds = {line.split(": ", 1)[0].rsplit(".", 1)[-1] for line in grid.warnings(checked)}
    assert kinds <= {"watch_command"}, kinds  # at most a program not installed here (redis): skipped


@pytest.mark.parametrize(
    "command",
    [
        "sleep 600",
        "sh -c 'exit 5'",
        "sh -c 'echo not yet; exit 1'",
        "sh -c 'cd /tmp && ./server --port 0'",
        "redis-server --port 0 --unixsocket redis.sock --save '' --appendonly no",
        ["python3", "-c", "import os; print(os.environ['HOME'], '$HOME | tee')"],
        f"sh -c 'exec python3 \"$COWSNAP_EXAMPLES\"/pool_flat.py {POOL}'",
        f"sh -c 'PYTHONHASHSEED=0 exec env -u X python3 -u \"${{COWSNAP_EXAMPLES}}/pool_objects.py\" {POOL} >o 2>&1'",
    ],
)
def test_commands_that_can_run_are_not_refused(command):
    assert grid.expand(config.validate(base(method="watch", watch_command=command)))


def test_a_run_bound_holds_its_sure_parts():
    from cowsnap.plan import point as plan_point

    for path in sorted(config.SCHEMA_PATH.parents[2].glob("config/*.yaml")):
        for run in grid.expand(config.load(path)):
            point = run.point
            if point["method"] == "watch":
                continue
            bound = plan_point.run_bound(point)
            assert plan_point.writers_at_least(point).seconds <= bound.seconds, (path, point)
            child = plan_point.child_at_least(point)
            assert child is None or child.seconds <= plan_point.child_at_most(point), (path, point)
            assert bound.memory_mib >= max(plan_point.memory_needed_mib(point), plan_point.warm_mib(point))
    small, large = (plan_point.run_bound(grid.resolve({"size_mib": size})) for size in (64, 1024))
    assert small.seconds < large.seconds and small.memory_mib < large.memory_mib


def test_the_plan_mirrors_what_the_runs_do():
    """The plan judges commands and time limits as the runs apply them."""
    import inspect
    import re

    from cowsnap.analyse import stats
    from cowsnap.measure import environment, vm
    from cowsnap.measure.watch import point as watch_point
    from cowsnap.plan import commands
    from cowsnap.plan import point as plan_point

    assert grid.COMPARED_FROM == stats.MIN_PAIRS
    assert commands.EXAMPLES == environment.REPO / "examples"
    assert (plan_point.WATCH_STOP_S, plan_point.WATCH_EXIT_S) == (watch_point.STOP_GRACE_S, watch_point.EXIT_NOTICE_S)
    assert "plan_point.vm_point_limit_s(points)" in inspect.getsource(vm.run_batch)  # one formula for both
    native = config.SCHEMA_PATH.parents[2] / "native"
    assert "using element = std::uint64_t;" in (native / "common" / "internal.h").read_text()
    assert plan_point.ELEMENT_BYTES == 8
    assert f"writes_per_look = {plan_point.WRITES_PER_LOOK};" in (native / "bench" / "writers.cpp").read_text()
    memcpy = (native / "bench" / "counters.cpp").read_text().split("double memcpy_gbps", 1)[1]
    passes = rf"i < {plan_point.MEMCPY_PASSES}; \+\+i\) {{\s+const auto t0 = clock::now\(\);\s+std::memcpy"
    assert re.search(passes, memcpy)


# Whole runs `cowsnap run` measured on the 2-core development VM (2026-12-06),
# the process's start included: each point's bound must hold them, the one
# slowed tenfold by other work beside it too.
MEASURED_RUNS = [
    ({"size_mib": 256, "method": "none", "writers": 1, "passes": 5}, 1.13),
    ({"size_mib": 256, "method": "fork", "writers": 2, "copiers": 2}, 2.92),
    ({"size_mib": 16, "method": "none", "writers": 1, "warm_mib": 2048}, 8.64),
    (
        {"size_mib": 256, "method": "fork", "writers": 1, "copiers": 1, "sharing_interval_ms": 1, "release": "none"},
        42.9,
    ),
]


@pytest.mark.parametrize(("settings", "seconds"), MEASURED_RUNS)
def test_the_bound_holds_what_runs_measured_here(settings, seconds):
    from cowsnap.plan import point as plan_point

    assert plan_point.run_bound(grid.resolve(settings)).seconds >= seconds
