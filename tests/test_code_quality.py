"""The style and structure checks CI runs: formatting, lint, the layer contracts and the types."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess:
    """Run a tool of this virtualenv from the repository root."""
    return subprocess.run([str(BIN / tool), *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("ruff", ("format", "--check", ".")),
        ("ruff", ("check", ".")),
        # The allowed import directions of pyproject's [tool.importlinter] contracts.
        ("lint-imports", ("--no-cache",)),
        ("mypy", ()),
    ],
    ids=["ruff-format", "ruff-check", "import-linter", "mypy"],
)
def test_the_tree_is_clean(tool, args):
    result = run(tool, *args)
    assert result.returncode == 0, f"{tool} {' '.join(args)}:\n{result.stdout[-6000:]}{result.stderr[-2000:]}"


def test_code_and_readme_cite_only_documents_of_the_repository():
    """Every `docs/...md` cited exists; nothing cites the planning documents kept outside."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    texts = [p for p in tracked.stdout.split() if p.endswith((".py", ".md", ".toml", ".yaml"))]
    cited: set[str] = set()
    for name in texts:
        text = (REPO / name).read_text(encoding="utf-8")
        assert not re.search(r"\b(DASHBOARD|DESIGN|requirements)\.md\b", text), name
        cited |= set(re.findall(r"\bdocs/[a-z_]+\.md\b", text))
    assert cited and all((REPO / doc).is_file() for doc in cited), cited
