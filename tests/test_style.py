"""The project's own checks: ruff and snakefmt stay clean."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def check(*command):
    done = subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff():
    check("ruff", "check", ".")
    check("ruff", "format", "--check", ".")


def test_snakefmt():
    check("snakefmt", "--check", ".")
