"""The config a user names is exactly what runs, and what is done is never
redone: real Snakemake runs and dry runs in a temporary folder."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from run_workflow import snakemake

from cowsnap.analyse import after_exit, aggregate, verdict
from cowsnap.analyse.summary import kernels

REPO = Path(__file__).resolve().parent.parent

TRIVIAL = "{method: none, size_mib: 1, batch_kib: 64, memcpy_mib: 0, writers: 1}"


def sweep(cwd, *args):
    return snakemake("--cores", "2", *args, cwd=cwd)


def planned(cwd, *args) -> dict[str, int]:
    """Jobs a dry run plans, by rule."""
    done = sweep(cwd, "--dry-run", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    counts, in_stats = {}, False
    for line in done.stdout.splitlines():
        words = line.split()
        if words[:2] == ["job", "count"]:
            in_stats = True
        elif in_stats and words[:1] == ["total"]:
            break  # the table ends; what follows (the jobs, with reasons) is not counted
        elif in_stats and len(words) == 2 and words[1].isdigit():
            counts[words[0]] = int(words[1])
    return counts


def test_configfile_replaces_the_default_experiments(tmp_path):
    (tmp_path / "config").mkdir()  # a default config, with an experiment of its own
    (tmp_path / "config" / "config.yaml").write_text(
        f"experiments:\n  default:\n    repetitions: 2\n    base: {TRIVIAL}\n"
    )
    (tmp_path / "mine.yaml").write_text(f"experiments:\n  solo:\n    repetitions: 3\n    base: {TRIVIAL}\n")
    jobs = planned(tmp_path, "--configfile", "mine.yaml")
    assert jobs["run_point"] == 3
    assert jobs["aggregate"] == 1


def test_config_values_add_to_the_default_config(tmp_path):
    (tmp_path / "config").mkdir()
    config = f"experiments:\n  solo:\n    repetitions: 3\n    base: {TRIVIAL}\n"
    (tmp_path / "config" / "config.yaml").write_text(config)
    assert planned(tmp_path, "--config", "schedule_seed=5")["run_point"] == 3


def test_new_experiment_seed_and_order_rerun_nothing_done(sweep_folder):
    first = f"schedule_seed: 1\nexperiments:\n  a:\n    repetitions: 2\n    base: {TRIVIAL}\n"
    (sweep_folder / "first.yaml").write_text(first)
    done = sweep(sweep_folder, "--configfile", "first.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    records = sorted((sweep_folder / "results" / "a").glob("p*/*.json"))
    assert len(records) == 2
    assert sorted(json.loads(p.read_text())["schedule_position"] for p in records) == [0, 1]
    # Another seed, a new experiment listed first: only its runs are planned.
    grown = f"schedule_seed: 7\nexperiments:\n  b:\n    repetitions: 3\n    base: {TRIVIAL[:-1]}, pattern: blocked}}\n"
    grown += f"  a:\n    repetitions: 2\n    base: {TRIVIAL}\n"
    (sweep_folder / "grown.yaml").write_text(grown)
    jobs = planned(sweep_folder, "--configfile", "grown.yaml")
    assert jobs["run_point"] == 3


def test_paper_config_in_smoke_mode_plans_every_point(tmp_path):
    from cowsnap.plan import config, grid

    paper = REPO / "config" / "paper.yaml"
    # Every point once; points that differ only in a size above smoke_mib
    # (fork_scaling's sizes) become one.
    runs = grid.expand(config.load(paper))
    # A VM point runs in its kernel's boot (run_vm_boot), not as a run_point job.
    points = {(r.experiment, grid.point_id(grid.scale(r.point, 16))) for r in runs if r.point["vm_kernel"] == "host"}
    jobs = planned(tmp_path, "--configfile", str(paper), "--config", "smoke_mib=16")
    assert jobs["run_point"] == len(points)
    assert jobs["aggregate"] == len(config.load(paper)["experiments"])


def test_no_run_ok_still_writes_a_summary(sweep_folder):
    skipped = "experiments:\n  e:\n    base: {size_mib: 1, batch_kib: 64, memcpy_mib: 0, numa_mem: 'bind:1023'}\n"
    (sweep_folder / "config" / "config.yaml").write_text(skipped)
    done = sweep(sweep_folder)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (sweep_folder / "results" / "summary.md").read_text()
    assert "Nothing ran" in summary and "NUMA node 1023 does not exist" in summary


def test_a_failed_job_keeps_its_traceback_in_the_log(sweep_folder):
    from cowsnap.plan import config, grid

    (sweep_folder / "config" / "config.yaml").write_text(f"experiments:\n  e:\n    base: {TRIVIAL}\n")
    (run,) = grid.expand(config.load(sweep_folder / "config" / "config.yaml"))
    record = sweep_folder / "results" / f"{run.run_id}.json"
    record.parent.mkdir(parents=True)
    record.write_text("{not json")  # a record no run wrote: the table cannot be made
    done = sweep(sweep_folder)
    assert done.returncode != 0
    log = (sweep_folder / "results" / "logs" / "e" / "aggregate.log").read_text()
    assert "Traceback" in log and "JSONDecodeError" in log, log


def test_report_text_is_plain(tmp_path):
    import jinja2
    from docutils.core import publish_parts

    from cowsnap import jobs

    evil = (
        "A description.\n\n.. include:: /etc/os-release\n\n.. raw:: html\n\n   <script>alert(1)</script>\n\n"
        "*stars* `tick` |sub| link_ {{ snakemake.params }}"
    )
    template = (REPO / "workflow" / "report" / "figure.rst").read_text()

    class Job:
        wildcards = {"figure": "ratios", "experiment": "e"}
        params = {"report_description": jobs.rst_text(evil)}

    text = jinja2.Template(template).render(snakemake=Job)
    html = publish_parts(text, writer="html", settings_overrides={"report_level": 5})["body"]
    assert "<script>" not in html and "PRETTY_NAME" not in html and "<em>" not in html
    assert ".. include:: /etc/os-release" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "*stars* `tick` |sub| link_ {{ snakemake.params }}" in html


def test_paper_config_in_smoke_mode_runs_to_its_figures_and_summary(tmp_path):
    # Every point of the paper configuration, at 8 MiB and one run each,
    # through the real workflow: each run ends ok or skipped with its reason.
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2",
         "--configfile", str(REPO / "config" / "paper.yaml"), "--config", "smoke_mib=8", f"results={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    smoke = tmp_path / "smoke"
    runs = pd.concat([pd.read_csv(path) for path in smoke.glob("*/runs.csv")], ignore_index=True)
    assert set(runs["status"]) <= {"ok", "skipped"}
    assert (runs["status"] == "ok").any()
    assert runs.loc[runs["status"] == "skipped", "reason"].str.len().gt(0).all()
    bench = runs[runs["method"] != "watch"]  # a watch point has no array
    assert (bench["size_mib"] <= 8).all() or (bench.loc[bench["size_mib"] > 8, "backing"] == "hugetlb-1g").all()
    summary = (smoke / "summary.md").read_text()
    assert "## Is it copying?" in summary and "## How to avoid it" in summary
    for caption in (smoke / "figures").glob("*.caption.txt"):
        assert caption.with_name(caption.name.replace(".caption.txt", ".png")).exists()
    assert len(list((smoke / "figures").glob("*.png"))) >= 20
    # Write latency on every timed point of every method, with its figure;
    # fork_scaling ran (its sizes fold into one point at the smoke size).
    timed = bench[(bench["status"] == "ok") & bench["timed"].astype(bool)]
    assert set(timed["method"]) == {"none", "fork", "uffd", "stop"}
    assert timed["write_p99_s"].notna().all() and timed["write_max_s"].notna().all()
    snapshots = timed[timed["method"] != "none"]
    assert snapshots["write_p99_s_during_snapshot"].notna().all()
    assert (smoke / "figures" / "write_latency-write_latency.png").exists()
    assert (runs.loc[runs["experiment"] == "fork_scaling", "status"] == "ok").any()
    assert "## What a writer waits" in summary


def swept(cwd, *args):
    done = sweep(cwd, *args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def files(folder: Path) -> dict[str, bytes]:
    """Every record and table of a results folder, by path, with its time and
    content (the figures, made
    again whenever their tables are, are counted in the plan)."""
    found = sorted(p for p in folder.glob("*/**/*") if p.suffix in {".json", ".csv"} and p.parts[-2] != "figures")
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in found}


def changed(before: dict, after: dict) -> set[str]:
    return {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}


def test_a_deleted_record_is_run_again_with_what_depends_on_it(sweep_folder):
    two = f"experiments:\n  a:\n    repetitions: 2\n    base: {TRIVIAL}\n  b:\n    base: {TRIVIAL}\n"
    (sweep_folder / "config" / "config.yaml").write_text(two)
    swept(sweep_folder)
    results = sweep_folder / "results"
    before = files(results)
    (deleted,) = results.glob("a/p*/1.json")
    deleted.unlink()
    figures = len(list((results / "figures").glob("a-*.png")))
    assert planned(sweep_folder) == {"run_point": 1, "aggregate": 1, "plot": figures, "summary": 1, "all": 1}
    assert f"output: {deleted.relative_to(sweep_folder)}" in sweep(sweep_folder, "--dry-run").stdout
    swept(sweep_folder)
    remade = {f"a/{table}.csv" for table in aggregate.TABLES}
    assert changed(before, files(results)) == {str(deleted.relative_to(results)), *remade}
    assert planned(sweep_folder) == {}  # done: nothing is run twice


def test_rerun_failed_removes_failed_records_and_the_sweep_runs_them_again(sweep_folder):
    failing = "{method: watch, watch_command: 'sleep 600', setup_command: \"sh -c 'exit 5'\"}"
    config = f"experiments:\n  e:\n    base: {TRIVIAL}\n  w:\n    base: {failing}\n"
    (sweep_folder / "config" / "config.yaml").write_text(config)
    swept(sweep_folder)
    results = sweep_folder / "results"
    (failed,) = results.glob("w/p*/0.json")
    assert json.loads(failed.read_text())["status"] == "failed"
    first = json.loads(failed.read_text())["started_at"]
    before = files(results)
    done = subprocess.run(
        [sys.executable, "-m", "cowsnap.cli", "rerun-failed"], cwd=sweep_folder, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    timeline = failed.with_suffix(".timeline.csv")  # what the failed watch had read
    assert done.stdout.split() == [str(p.relative_to(sweep_folder)) for p in (timeline, failed)]
    assert "1 failed record(s) removed" in done.stderr
    figures = len(list((results / "figures").glob("w-*.png")))
    assert planned(sweep_folder) == {"watch_point": 1, "aggregate": 1, "plot": figures, "summary": 1, "all": 1}
    swept(sweep_folder)
    assert json.loads(failed.read_text())["started_at"] != first  # measured again
    remade = {f"w/{table}.csv" for table in aggregate.TABLES}
    assert changed(before, files(results)) == {str(p.relative_to(results)) for p in (failed, timeline)} | remade
    assert planned(sweep_folder) == {}


def test_the_summary_states_each_cells_after_exit_counts_from_its_records(sweep_folder):
    # A real sweep on this machine's kernel: the answer's line for each
    # backing holds the counts of that point's own record.
    config = (
        "experiments:\n  k:\n    base: {method: fork, size_mib: 8, batch_kib: 2048, memcpy_mib: 0, release: none,"
        " start: after_child, pattern: blocked, writers: 1, copiers: 1}\n    matrix: {backing: [4k, mthp-64k]}\n"
    )
    (sweep_folder / "k.yaml").write_text(config)
    done = sweep(sweep_folder, "--configfile", "k.yaml")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = aggregate.read_csv(sweep_folder / "results" / "k" / "runs.csv")
    summary = (sweep_folder / "results" / "summary.md").read_text()
    answer = " ".join(summary.split("## Machine")[0].split())
    ran = runs[runs["status"] == "ok"]
    assert not ran.empty
    for _, run in ran.iterrows():
        copies, faults = run["writer_wpcopy_count_after_snapshot"], run["writer_minflt_after_snapshot"]
        word = verdict.copying_word(copies, faults)
        # The answer: the verdict per backing on this kernel; After the exit: the record's own counts.
        name = kernels.short_kernel(run["kernel"], after_exit.THIS_MACHINE)
        sentence = answer.split(f"{name}: ")[1].split(". ")[0].split(" (every cell")[0]
        named = f"on {run['backing']}" in sentence.replace(";", "")
        assert named == (word in (verdict.COPYING_WORD, verdict.PARTLY_COPYING_WORD)), (sentence, word)
        if not named:
            assert word == verdict.NOT_COPYING_WORD
        row = next(line for line in summary.splitlines() if line.startswith(f"| {name} | {run['backing']} | "))
        assert f"| {copies:,.0f} of {faults:,.0f} |" in row and row.endswith(f"| {word} |")
