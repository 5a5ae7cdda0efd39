"""The layout's rules, so that a change breaking them fails the suite (README, "Where things are")."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "auth_mcp"
MAX_TOP_LEVEL_MODULES = 12  # entry points, settings and the primitives; the rest lives in role packages
MAX_FUNCTION_LINES = 80
IMPORT_LINTER = "import-linter==2.17"  # the version .ci/run uses


def test_the_import_rule_between_the_packages_holds() -> None:
    # The contracts are in pyproject.toml ([tool.importlinter]); lint-imports checks them. It runs
    # in a tool environment of its own (as .ci/run does): its dependencies (click, rich) installed
    # beside the project would make httpx load its command line, slowing every process's start.
    uv = shutil.which("uv")
    assert uv is not None, "the suite runs with uv (`uv run pytest`), which runs lint-imports"
    command = [uv, "tool", "run", "--from", IMPORT_LINTER, "lint-imports"]
    result = subprocess.run(command, cwd=PACKAGE.parent, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_few_modules_sit_directly_under_the_package() -> None:
    modules = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules


def test_no_function_is_longer_than_80_lines() -> None:
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, long
