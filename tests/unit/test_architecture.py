"""The layers of DESIGN.md §7 hold: the domain imports nothing of the others, and no
module imports a layer above it (import-linter contract in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_layers_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_domain_imports_only_the_standard_library():
    allowed_prefixes = ("drumbeat.domain", "__future__")
    for path in (ROOT / "drumbeat" / "domain").glob("*.py"):
        for line in path.read_text().splitlines():
            words = line.split()
            if line.startswith(("import ", "from ")):
                module = words[1]
                top = module.split(".")[0]
                assert module.startswith(allowed_prefixes) or top in sys.stdlib_module_names, f"{path.name}: {line}"


def test_the_code_passes_the_linter():
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "drumbeat", "bench", "tests"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout[-3000:]
