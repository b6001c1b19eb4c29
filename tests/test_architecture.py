"""House rules that code review alone would let slip: import direction and module size."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_costbot_never_imports_cleaners_except_the_cli_package() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "costbot").rglob("*.py")
        if path.relative_to(ROOT / "costbot").parts[0] != "cli"
        and any(name == "cleaners" or name.startswith("cleaners.") for name in _imports(path))
    ]
    assert offenders == []


def test_modules_stay_small() -> None:
    big = [
        f"{path.relative_to(ROOT)} ({n} lines)"
        for path in [*(ROOT / "costbot").rglob("*.py"), *(ROOT / "cleaners").rglob("*.py")]
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500
    ]
    assert big == []


def test_importing_costbot_creates_no_clients_or_threads() -> None:
    code = (
        "import threading, costbot.cli, costbot.scan, costbot.providers.aws, costbot.demo,"
        " costbot.slack.app, costbot.slack.server, cleaners;"
        "print(threading.active_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
