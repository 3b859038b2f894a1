"""The code's structure: the harness measures every method the same way,
asking the method's Snapshot, never its name."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from cowsnap.plan import config

REPO = Path(__file__).resolve().parent.parent


def test_harness_names_no_method():
    harness = (REPO / "native" / "bench" / "harness.cpp").read_text()
    methods = [m for m in config.point_schema()["method"]["enum"] if m != "watch"]
    named = [m for m in methods if re.search(rf'"{re.escape(m)}"|Method::{re.escape(m)}\b', harness)]
    assert not named, f"native/bench/harness.cpp names the methods {named}: ask the Snapshot instead"


INCLUDE = re.compile(r'^#include "([\w./]+)"', re.MULTILINE)


def test_the_library_includes_only_what_it_shares_with_the_benchmark():
    """native/library/ (the watch, the spawn of the benchmark) and the
    common files it links include none of the benchmark's internals."""
    sources = [*(REPO / "native" / "library").glob("*.cpp")]
    sources += [REPO / "native" / "common" / name for name in ("wire.cpp", "taskstats.cpp", "wire.h", "taskstats.h")]
    included = {source.name: set(INCLUDE.findall(source.read_text())) for source in sources}
    assert all(names and names <= {"cowsnap.h", "wire.h", "taskstats.h", "params.def", "result.def"}
               for names in included.values()), included  # fmt: skip


# The stages, lowest first: each may import the stages below it, never one
# above. The modules of cowsnap/ outside them (cli.py, watch_cli.py) are the
# command layer above all, and may import any stage.
STAGES = ("plan", "measure", "analyse")
COMMAND_LAYER = len(STAGES)


def modules() -> dict[str, Path]:
    root = REPO / "cowsnap"
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The cowsnap modules a file imports, at its top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                out.add(name if name in known else node.module)
    return {name for name in out if name in known and known[name].name != "__init__.py"}


def stage_of(module: str) -> int:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 2 and parts[1] in STAGES else COMMAND_LAYER


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def test_no_stage_imports_a_stage_above_it():
    upward = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if stage_of(target) > stage_of(module)
    ]
    assert not upward, f"imports from a lower stage to a higher one ({' < '.join(STAGES)}): {upward}"


# The two products within the stages: each imports what the stages share,
# never the other's folder.
PRODUCTS = ("bench", "watch")


def test_the_benchmark_and_the_watch_import_only_what_they_share():
    def product(module: str) -> str:
        parts = module.split(".")
        return parts[2] if len(parts) > 3 and parts[2] in PRODUCTS else ""

    crossing = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if product(module) and product(target) and product(module) != product(target)
    ]
    assert not crossing, f"one product imports the other's folder: {crossing}"


def test_no_import_circle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                circles.append(" -> ".join(path[path.index(target) :] + [module, target]))
            elif target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not circles, f"import circles: {circles}"


def test_figure_names_are_the_figures_plots_draws():
    from cowsnap.analyse import figures, plots

    assert tuple(plots.FIGURES) == figures.NAMES


def test_the_workflow_loads_no_plotting_library_to_plan():
    # What workflow/rules/common.smk imports, as a dry run imports it.
    lines = (REPO / "workflow" / "rules" / "common.smk").read_text().splitlines()
    imports = [line for line in lines if line.startswith(("import ", "from "))]
    code = "\n".join([*imports, "import sys", "print(sorted({'matplotlib', 'seaborn', 'cppyy'} & set(sys.modules)))"])
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"common.smk's imports load {done.stdout.strip()}"


def test_every_module_constant_is_used():
    """A module-level constant (an UPPER_CASE name) that nothing reads is a
    dead name: each must be read somewhere besides its own assignment."""
    folders = {"cowsnap": "*.py", "workflow": "*.*", "tests": "*.py"}
    sources = [
        REPO / "Snakefile",
        *(path for top, glob in folders.items() for path in sorted((REPO / top).rglob(glob))),
    ]
    texts = {path: path.read_text() for path in sources}
    unused = []
    for path in sorted((REPO / "cowsnap").rglob("*.py")):
        tree = ast.parse(texts[path])
        for node in tree.body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            for target in targets:
                if isinstance(target, ast.Name) and re.fullmatch(r"_?[A-Z][A-Z0-9_]*", target.id):
                    uses = sum(len(re.findall(rf"\b{target.id}\b", text)) for text in texts.values())
                    if uses < 2:  # the assignment itself
                        unused.append(f"{path.relative_to(REPO)}: {target.id}")
    assert not unused, f"constants nothing reads: {unused}"


# The analyse modules that may read measure/: the one that turns its records
# into tables, calibrate's report (its sides and quantities), and the watch's
# live display of its tracker. Every other analyse module reads the tables.
READS_MEASURE = {
    "cowsnap.analyse.aggregate": "reads the records into the tables",
    "cowsnap.analyse.calibration": "names calibrate's sides and quantities",
    "cowsnap.analyse.watch.report": "the live display of cowsnap watch's tracker",
}


def test_the_analysis_reads_tables_not_the_measuring_code():
    graph = import_graph()
    assert set(READS_MEASURE) <= set(graph)
    reading = {
        module: sorted(name for name in imported if name.startswith("cowsnap.measure"))
        for module, imported in graph.items()
        if module.startswith("cowsnap.analyse") and module not in READS_MEASURE
    }
    assert not {module: names for module, names in reading.items() if names}
