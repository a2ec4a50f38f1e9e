"""The import contracts of pyproject.toml ([tool.importlinter]) hold: the site over the apps, each app
over the ones it uses, Skyline's plumbing importing no app, no cycle inside a package. Imports inside
functions count as well as those at the top of a module."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def test_the_imports_keep_the_contracts():
    run = subprocess.run(
        [sys.executable, "-c", LINT, "pyproject.toml", "--no-cache", "--no-logo"],
        cwd=ROOT, capture_output=True, text=True, env={"PATH": "", "COLUMNS": "200"},
    )
    assert run.returncode == 0, run.stdout + run.stderr  # the report names each broken contract's imports
    assert "Contracts: 3 kept, 0 broken." in run.stdout
