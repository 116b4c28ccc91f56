"""The docs' code samples name what the installed package has.

Every Python sample in the README and docs/ parses, its imports of `taskcast` resolve, and every
dotted name `taskcast.x.y` the docs mention (in code or in prose) exists. Nothing is run: the
samples show user code, with names (`your_view`, `MyAccess`) the reader supplies.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
# `taskcast.tasks.fetch`, not `data/taskcast.sqlite3` or `static/taskcast.css`
DOTTED = re.compile(r"(?<![\w/.-])taskcast(?:\.[A-Za-z_]\w*)+")


def resolves(dotted: str) -> bool:
    """Whether `dotted` is a module of taskcast, or a name inside one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


def samples(doc: Path) -> list[ast.Module]:
    return [
        ast.parse(block, f"{doc.name} sample") for block in PYTHON_BLOCK.findall(doc.read_text())
    ]


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_every_python_sample_parses_and_its_imports_resolve(doc: Path) -> None:
    for sample in samples(doc):
        for node in ast.walk(sample):
            if isinstance(node, ast.ImportFrom) and node.module:
                top = node.module.split(".")[0]
                assert top != "app", f"{doc.name}: imports the source folder app, not taskcast"
                if top == "taskcast":
                    for alias in node.names:
                        assert resolves(f"{node.module}.{alias.name}"), (
                            f"{doc.name}: from {node.module} import {alias.name}"
                        )
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] != "app", f"{doc.name}: import {alias.name}"
                    if alias.name.startswith("taskcast"):
                        assert resolves(alias.name), f"{doc.name}: import {alias.name}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_every_dotted_taskcast_name_exists(doc: Path) -> None:
    missing = sorted({name for name in DOTTED.findall(doc.read_text()) if not resolves(name)})
    assert not missing, f"{doc.name} names what taskcast does not have: {missing}"


def test_every_test_the_docs_name_exists() -> None:
    """The reliability promises and the benchmark notes point at tests: each must be there."""
    defined: dict[str, set[str]] = {}
    for path in (ROOT / "tests").rglob("*.py"):
        relative = str(path.relative_to(ROOT))
        for name in re.findall(r"(?m)^\s*(?:async )?def (test_\w+)", path.read_text()):
            defined.setdefault(name, set()).add(relative)
    missing = []
    for doc in DOCS:
        text = doc.read_text()
        for path, name in re.findall(r"(tests/[\w/]+\.py)(?:::(test_\w+))?", text):
            if not (ROOT / path).is_file() or (name and path not in defined.get(name, ())):
                missing.append(f"{doc.name}: {path}{'::' + name if name else ''}")
        missing += [
            f"{doc.name}: {name}"
            for name in re.findall(r"`(test_\w+)`", text)
            if name not in defined
        ]
    assert not missing, missing
