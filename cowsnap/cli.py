"""Command line: run one point outside Snakemake, compare two result sets,
predict a snapshot's cost at a size no run measured.

    cowsnap run size_mib=64 method=fork writers=2 [--out record.json]
    cowsnap run method=watch watch_command='my-server --port 7000' snapshot_command=... [--out record.json]
    cowsnap compare results-a results-b [--out DIR] [--pool]
    cowsnap rerun-failed [RESULTS]
    cowsnap predict --size 300G [--backing 4k] --write-rate R [--pattern random] [--results DIR]
    cowsnap calibrate [--sizes 256,1024] [--repetitions 5] [--out DIR]
    cowsnap watch [--interval 1] [--sharing] [--out DIR] -- COMMAND [ARGS...]
    cowsnap watch --pid PID [--for SECONDS] [--interval 1] [--sharing] [--out DIR]

Keys and values of `run` are those of the config (cowsnap/plan/schema.yaml), each
given once, in any order with the options; the record is printed as JSON
(and written to --out when given; when that fails it is still printed and
the exit status is 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from cowsnap.measure import records
from cowsnap.plan import config, grid
from cowsnap.plan import point as plan_point

CXXFLAGS = config.schema()["properties"]["cxxflags"]["default"]
CXXFLAGS_HELP = "compiler flags of the native benchmark (default: %(default)s; the config's cxxflags)"


def parse_settings(pairs: list[str]) -> dict:
    settings = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise config.ConfigError(f"{pair!r}: settings are key=value, keys: {', '.join(config.axis_names())}")
        if key in settings:
            raise config.ConfigError(f"{key}: given twice ({settings[key]!r} and {text!r}); give each key once")
        if config.point_schema().get(key, {}).get("type") == "string":
            settings[key] = text  # vm_kernel=6.10 is the series 6.10, not the number 6.1
            continue
        try:
            settings[key] = yaml.safe_load(text)  # 64 -> int, true -> bool, fork -> str
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or "not a YAML value"
            raise config.ConfigError(
                f"{key}={text!r}: {problem}; allowed values: {config.allowed_values(config.point_schema()[key])}"
                if key in config.point_schema()
                else f"{key}={text!r}: {problem}"
            ) from None
    return settings


DESCRIPTION = """cowsnap: what a fork()-based memory snapshot costs. Commands: run (one
point outside Snakemake), compare (two results folders), rerun-failed (measure
a results folder's failed runs again), predict (a snapshot's cost at a size no
run measured), calibrate (the harness against plain C), watch (is a program of
yours copying?). `cowsnap COMMAND --help` for each."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser (calibrate and watch parse their own options:
    calibrate_parser, cowsnap.watch_cli.build_parser)."""
    parser = argparse.ArgumentParser(prog="cowsnap", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one point and print its record")
    run.add_argument(
        "settings", nargs="*", metavar="key=value", help="point keys of the config (docs/config.md), each given once"
    )
    run.add_argument("--out", type=config.output_path("--out"), help="also write the record here")
    run.add_argument(
        "--build-dir", type=config.output_path("--build-dir"), default=Path("results/build"), help="native build cache"
    )
    run.add_argument("--cxxflags", default=CXXFLAGS, help=CXXFLAGS_HELP)
    compare = commands.add_parser("compare", help="ratios B/A of the points two results folders both measured")
    compare.add_argument("a", type=Path, help="results folder A (the reference)")
    compare.add_argument("b", type=Path, help="results folder B")
    compare.add_argument(
        "--out", type=config.output_path("--out"), default=Path("results/compare"), help="where compare.csv/.md/.png go"
    )
    compare.add_argument("--pool", action="store_true", help="allow a side to hold runs from several machines")
    rerun_failed = commands.add_parser(
        "rerun-failed", help="remove a results folder's failed records: the next snakemake measures them again"
    )
    rerun_failed.add_argument("results", type=Path, nargs="?", default=Path("results"), help="results folder")
    predict = commands.add_parser(
        "predict", help="what a snapshot of a size no run measured would cost, from a sweep's cost model"
    )
    predict.add_argument("--size", required=True, help="the memory snapshotted: 300G (GiB), 300GB (10^9 bytes), 512M")
    predict.add_argument("--backing", default="4k", help="its page backing, one the sweep measured (default 4k)")
    predict.add_argument(
        "--write-rate",
        type=float,
        required=True,
        help="one-element writes a second, all writers together (the config's write_rate is per writer)",
    )
    predict.add_argument("--pattern", default="random", help="random or skewed (default random)")
    predict.add_argument(
        "--results", type=Path, default=Path("results"), help="the results folder whose model.csv to use"
    )
    predict.add_argument("--kernel", help="the kernel release whose constants to use, when it holds several")
    commands.add_parser(
        "calibrate", help="the harness against a plain C program doing the same work, paired run by run", add_help=False
    )
    commands.add_parser(
        "watch", help="is a running program copying? copies, faults, CPU time per interval", add_help=False
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["calibrate"]:
        return calibrate_command(argv[1:])
    if argv[:1] == ["watch"]:
        from cowsnap import watch_cli

        return watch_cli.main(argv[1:])
    parser = build_parser()
    # Settings may follow options (argparse would take only those before the first).
    args, extra = parser.parse_known_args(argv)
    unknown = [word for word in extra if args.command != "run" or word.startswith("-") or "=" not in word]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "run":
        args.settings += extra
    if args.command == "compare":
        return compare_command(args)
    if args.command == "rerun-failed":
        return rerun_failed_command(args)
    if args.command == "predict":
        return predict_command(args)
    try:
        point = config.validate_point(parse_settings(args.settings))
        grid.check_applies([point], "point")
        point = grid.resolve(point)
        grid.check_point(point, "point")
    except config.ConfigError as error:
        print(f"cowsnap: {error}", file=sys.stderr)
        return 2
    if args.out:
        reason = records.space_reason(args.out.parent)
        if reason:
            print(f"cowsnap: --out {args.out}: {reason}", file=sys.stderr)
            return 1
    from cowsnap.measure import native
    from cowsnap.measure.bench import runner

    try:
        build = native.ensure_built(args.build_dir, args.cxxflags)
    except native.BuildError as error:
        print(f"cowsnap: {error}", file=sys.stderr)
        return 1
    ids = {"run_id": "cli/" + grid.point_id(point) + "/0"}
    if plan_point.is_vm(point):  # any method: in a VM booting its kernel
        from cowsnap.measure import guests

        record = guests.run_boot([(point, ids)], build)[0]
    elif point["method"] == "watch":
        from cowsnap.measure.watch import point as watch_point

        # A failed or stopped watch point leaves the timeline it had read beside its record.
        record = watch_point.run(point, build, ids, args.out.with_suffix(".timeline.csv") if args.out else None)
    else:
        record = runner.run(point, build, ids)
    status = 0 if record["status"] != "failed" else 1
    if args.out:
        try:
            records.write(args.out, record)
        except OSError as error:
            print(
                f"cowsnap: cannot write the record to {args.out}: {error.strerror}; it is printed below",
                file=sys.stderr,
            )
            status = 1
    print(json.dumps(record, indent=1))
    return status


def compare_command(args) -> int:
    from cowsnap.analyse import compare

    try:
        notes = compare.write(args.a, args.b, args.out, args.pool)
    except compare.CompareError as error:
        print(f"cowsnap: {error}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"cowsnap: {note}", file=sys.stderr)
    print(args.out / "compare.md")
    return 0


CALIBRATE_HELP = """The harness against plain C doing the same work on this machine, paired:
round k runs each side once (plain C alone, plain C with threads parked beside
its writer, the harness; the order alternating), and each quantity's harness /
plain C is the median of the per-round ratios with its distribution-free
interval and that interval's level (5 rounds: [min, max] at 93.75%). It is a
bias where the interval lies clear of 1, else noise these runs cannot resolve,
with the ratios they could have resolved: above M / L or below M / H (M the
median, [L, H] its interval). A bias over 10% is explained from what was
measured where it can be."""


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes are positive MiB, comma-separated (256,1024)")
    return sizes


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a positive integer")
    return int(text)


def calibrate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cowsnap calibrate", description=CALIBRATE_HELP)
    parser.add_argument("--sizes", type=_sizes, default=[256, 1024], help="array sizes in MiB (default 256,1024)")
    parser.add_argument(
        "--repetitions", type=_positive, default=5, help="rounds per size, each one run of every side (default 5)"
    )
    parser.add_argument("--batch-kib", type=_positive, default=2048, help="the child's copy batch (default 2048)")
    parser.add_argument("--cold", action="store_true", help="no warming before each run (the machine as it is)")
    parser.add_argument("--build-dir", type=Path, default=Path("results/build"), help="native build cache")
    parser.add_argument("--cxxflags", default=CXXFLAGS, help=CXXFLAGS_HELP)
    parser.add_argument(
        "--out", type=config.output_path("--out"), help="also write calibration.csv (the runs) and calibration.md here"
    )
    return parser


def calibrate_command(argv: list[str]) -> int:
    """cowsnap calibrate: measure both sides (measure/bench/calibrate.py),
    print the paired table (analyse/calibration.py)."""
    args = calibrate_parser().parse_args(argv)
    from cowsnap.analyse import calibration
    from cowsnap.measure import native
    from cowsnap.measure.bench import calibrate

    try:
        build = native.ensure_built(args.build_dir, args.cxxflags)
        df = calibrate.measure(
            build,
            args.sizes,
            args.repetitions,
            args.batch_kib,
            progress=lambda text: print(f"cowsnap calibrate: {text}", file=sys.stderr),
            warm=not args.cold,
        )
    except (native.BuildError, calibrate.CalibrationError) as error:
        print(f"cowsnap calibrate: {error}", file=sys.stderr)
        return 1
    state = "cold (the machine as it is)" if args.cold else "each run first touching and freeing what it allocates"
    setting = f"One writer, one copier, 4 KiB pages, batch {args.batch_kib} KiB; {state}"
    text = calibration.report(df, setting)
    print(text, end="")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out / "calibration.csv", index=False)
        (args.out / "calibration.md").write_text(text)
    return 0


def predict_command(args) -> int:
    from cowsnap.analyse import prediction

    try:
        lines = prediction.predict(args.results, args.size, args.backing, args.write_rate, args.pattern, args.kernel)
    except prediction.PredictError as error:
        print(f"cowsnap predict: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def rerun_failed_command(args) -> int:
    from cowsnap import rerun

    if not args.results.is_dir():
        print(f"cowsnap: {args.results}: no such results folder", file=sys.stderr)
        return 2
    removed = rerun.remove_failed(args.results)
    for path in removed:
        print(path)
    failed = sum(path.suffix == ".json" for path in removed)  # the rest: timelines, VM boots' folders
    print(f"cowsnap: {failed} failed record(s) removed; snakemake measures them again", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
