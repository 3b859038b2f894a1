"""Build native/ through cppyy's toolchain and load it into Python.

native/ holds a folder per binary. genreflex (cppyy's dictionary generator,
on Cling) turns native/common/cowsnap.h into a reflection dictionary; the
system C++ compiler builds it with native/common/ and native/library/ (the
code that starts a run, and the watch's taskstats listener) into one shared
library, which cppyy.load_reflection_info loads (a run parses no header and
compiles nothing). The same compiler builds native/common/ and native/bench/
into an executable, cowsnap-bench, that each run starts: the timed work runs
in a process holding only the benchmark. A plain C program doing the same
work, native/calibrate/calibrate.c, is built beside it as cowsnap-calibrate. Builds
are cached under a key made of the sources, the flags (the benchmark's link
flags included), the compiler and cppyy versions, and the CPU model when the
flags tune for the build machine (-march=native), so a cluster of mixed
nodes never loads code built for another CPU.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cowsnap.measure import environment

NATIVE_DIR = Path(__file__).resolve().parents[2] / "native"
LIBRARY = "libcowsnap.so"
BENCH = "cowsnap-bench"
CALIBRATE = "cowsnap-calibrate"
# The benchmark links the C++ runtime in: its process maps about as many
# regions as a plain C program's, so its fork() has as few to copy.
BENCH_LINK_FLAGS = ("-static-libstdc++", "-static-libgcc")
BUILD_INFO = "build.json"
# One folder of native/ per binary, and common/ for what both C++ binaries
# compile: the interface Python sees (cowsnap.h), the wire and taskstats.
COMMON = "common"
HEADER = f"{COMMON}/cowsnap.h"
SELECTION = "library/selection.xml"  # what genreflex exposes to Python
FOLDERS = {LIBRARY: (COMMON, "library"), BENCH: (COMMON, "bench")}


class BuildError(RuntimeError):
    """The compiler rejected native/; the message carries its diagnostics."""


def _tool(name: str) -> str:
    """A cppyy tool installed beside this Python (venvs need not be on PATH)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def _run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise BuildError(f"{' '.join(command)} failed ({done.returncode}):\n{output}")
    return output


def compiler_version() -> str:
    return _run(["c++", "--version"], Path.cwd()).splitlines()[0]


def cppyy_version() -> str:
    from importlib.metadata import version

    return version("cppyy")


def source_files(native_dir: Path = NATIVE_DIR) -> list[Path]:
    return sorted(p for p in native_dir.rglob("*") if p.suffix in {".h", ".def", ".c", ".cpp", ".xml"})


def compiled(binary: str, native_dir: Path = NATIVE_DIR) -> list[str]:
    """The C++ sources one binary compiles: those of its folders."""
    return [str(path) for folder in FOLDERS[binary] for path in sorted((native_dir / folder).glob("*.cpp"))]


def source_hash(native_dir: Path = NATIVE_DIR) -> str:
    digest = hashlib.sha256()
    for path in source_files(native_dir):
        digest.update(str(path.relative_to(native_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_key(cxxflags: str, native_dir: Path = NATIVE_DIR) -> str:
    """Names one build: same key, same library."""
    parts = [source_hash(native_dir), cxxflags, " ".join(BENCH_LINK_FLAGS), compiler_version(), cppyy_version()]
    if "native" in cxxflags:
        parts.append(environment.cpu_model())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Build:
    library: Path

    @property
    def directory(self) -> Path:
        return self.library.parent

    @property
    def bench(self) -> Path:
        return self.directory / BENCH

    @property
    def calibrate(self) -> Path:
        return self.directory / CALIBRATE

    def describe(self) -> dict:
        """What every record says about the code that measured it."""
        return json.loads((self.directory / BUILD_INFO).read_text())


def build(out_dir: Path, cxxflags: str, native_dir: Path = NATIVE_DIR) -> Build:
    """Compiles native/ into out_dir/libcowsnap.so; BuildError on failure.

    Builds in a private temporary folder and renames it into place, so
    jobs on several nodes may build the same key at once."""
    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        include = f"-I{native_dir / COMMON}"
        _run(
            [
                _tool("genreflex"),
                str(native_dir / HEADER),
                f"--selection={native_dir / SELECTION}",
                "-o",
                "cowsnap_rflx.cpp",
                "--rootmap=libcowsnap.rootmap",
                f"--rootmap-lib={LIBRARY}",
                include,
            ],
            cwd=tmp,
        )
        cling_flags = _run([_tool("cling-config"), "--cppflags"], tmp).split()
        _run(
            ["c++", *cling_flags, *cxxflags.split(), "-fPIC", "-shared", include]
            + compiled(LIBRARY, native_dir)
            + ["cowsnap_rflx.cpp", "-o", LIBRARY],
            cwd=tmp,
        )
        bench_flags = [*cxxflags.split(), "-pthread", *BENCH_LINK_FLAGS, include]
        _run(["c++", *bench_flags, *compiled(BENCH, native_dir), "-o", BENCH], cwd=tmp)
        calibrate = native_dir / "calibrate" / "calibrate.c"
        if calibrate.exists():
            _run(["cc", "-O2", "-std=c11", "-pthread", str(calibrate), "-o", CALIBRATE], cwd=tmp)
        info = {
            "build_key": out_dir.name,
            "source_hash": source_hash(native_dir),
            "cxxflags": cxxflags,
            "compiler": compiler_version(),
            "cppyy_version": cppyy_version(),
        }
        (tmp / BUILD_INFO).write_text(json.dumps(info, indent=1) + "\n")
        tmp.chmod(0o755)
        if (out_dir / LIBRARY).exists():  # another job built it meanwhile
            shutil.rmtree(tmp)
        else:
            shutil.rmtree(out_dir, ignore_errors=True)  # Snakemake may have made it, empty
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Build(out_dir / LIBRARY)


def built(library: Path, cxxflags: str, build_log: str) -> Build:
    """The build the build rule made, for a run to load; BuildError, naming
    the build's log, when it is missing or was made for another CPU."""
    library = Path(library)
    missing = [path.name for path in (library, library.parent / BENCH) if not path.exists()]
    if missing:
        raise BuildError(f"the build has no {', '.join(missing)} in {library.parent}: see {build_log}")
    if "native" in cxxflags and build_key(cxxflags) != library.parent.name:
        raise BuildError(
            f"{library.parent} was built with {cxxflags!r} for another CPU ({build_key(cxxflags)} here): build "
            "on each node type, or use portable cxxflags"
        )
    return Build(library.resolve())


def ensure_built(cache_dir: Path, cxxflags: str) -> Build:
    """The cached build for these sources and flags, built if missing."""
    out_dir = Path(cache_dir) / build_key(cxxflags)
    library = out_dir / LIBRARY
    if library.exists() and (out_dir / BENCH).exists():
        return Build(library.resolve())
    return build(out_dir, cxxflags)


@functools.cache
def load(library: Path):
    """The cowsnap C++ namespace, from a built library, through cppyy; loaded
    once per process."""
    # cppyy JIT-compiles only small call wrappers; keep Cling's own flags
    # portable so a shared installation works on every node type.
    os.environ.setdefault("EXTRA_CLING_ARGS", "-O2")
    import cppyy

    cppyy.load_reflection_info(str(library))
    namespace = cppyy.gbl.cowsnap
    # run() waits for the benchmark process; the caller's other threads
    # (Snakemake's scheduler, when a run is one of its jobs) go on meanwhile.
    namespace.run.__release_gil__ = True
    return namespace
