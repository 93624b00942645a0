"""Layers point one way (docs/ARCHITECTURE.md): utils <- gaussian_renderer <- scene / brain <- synthesis <- entry scripts.

``data_utils`` writes the contract folders, so it may use the readers' contract helpers (``brain.data``,
``scene.subject``); nothing below the entry scripts imports it. Every import statement is read, including
those inside functions.
"""
import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("utils", "gaussian_renderer", "scene", "brain", "synthesis", "data_utils")
FORBIDDEN = {
    "utils": {"gaussian_renderer", "scene", "brain", "synthesis", "data_utils"},
    "gaussian_renderer": {"scene", "brain", "synthesis", "data_utils"},
    "scene": {"brain", "synthesis", "data_utils"},
    "brain": {"scene", "synthesis", "data_utils"},
    "synthesis": {"data_utils"},
    "data_utils": {"synthesis"},
}


def imported_packages(path: Path) -> dict[str, int]:
    """``{top-level package: first line}`` of every import in ``path``."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            found.setdefault(name.split(".")[0], node.lineno)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_nothing_from_the_layers_above_it(package):
    offending = []
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        for imported, line in imported_packages(path).items():
            if imported in FORBIDDEN[package]:
                offending.append(f"{path.relative_to(REPO_ROOT)}:{line} imports {imported}")
    assert not offending, "\n".join(offending)
