"""The real workflow from a test: `snakemake` run in a folder of the test's."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def snakemake(*args, cwd, timeout=600) -> subprocess.CompletedProcess:
    """Snakemake with the repository's Snakefile in cwd; its output captured."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
