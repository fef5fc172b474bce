"""The shape of the package, enforced: data flows one way (source → quantize → generate → compare → app / reports /
hub → cli), nothing imports a layer above it, there is no import cycle, and no file grows past 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dit_demo"
MAX_LINES = 400

# Lower number = lower layer. A module may import its own layer or any layer below.
LAYERS = {
    "dit_demo.errors": 0,
    "dit_demo.units": 0,
    "dit_demo.engine": 1,
    "dit_demo.embedded": 2,
    "dit_demo.compare": 3,
    "dit_demo.reports": 4,
    "dit_demo.hub": 4,
    "dit_demo.app": 5,
    "dit_demo.cli": 6,
    "dit_demo.__main__": 6,
    "dit_demo": 0,  # the package's own __init__
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    best = max((prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")), key=len)
    return LAYERS[best]


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path, module: str) -> set[str]:
    """Every dit_demo module a file imports, at any depth (function-local imports count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    modules = package_modules()
    return {name for name in found if name in modules and name != module}


def test_layer_table_covers_every_module():
    for module in package_modules():
        assert layer_of(module) is not None, module


def test_no_module_imports_a_layer_above_it():
    violations = []
    for module, path in package_modules().items():
        for target in imported_modules(path, module):
            if layer_of(target) > layer_of(module):
                violations.append(f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})")
    assert not violations, "\n".join(violations)


def test_no_import_cycles():
    graph = {module: imported_modules(path, module) for module, path in package_modules().items()}
    graph = {
        m: {t for t in targets if not m.startswith(t + ".") and not t.startswith(m + ".")}
        for m, targets in graph.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " → ".join(cycle))


@pytest.mark.parametrize("folder", ["dit_demo", "hub"])
def test_no_file_over_the_size_limit(folder):
    long_files = {
        str(p.relative_to(ROOT)): n
        for p in sorted((ROOT / folder).rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    app = len((ROOT / "app.py").read_text(encoding="utf-8").splitlines())
    if app > MAX_LINES:
        long_files["app.py"] = app
    assert not long_files, f"files over {MAX_LINES} lines: {long_files}"


def test_the_checker_catches_an_upward_import(tmp_path):
    """The walk must see function-local and relative imports, or the layering test would pass vacuously."""
    planted = tmp_path / "generate.py"
    planted.write_text("def f():\n    from dit_demo.app import service\n    from ..cli import main\n")
    found = imported_modules(planted, "dit_demo.engine.generate")
    assert "dit_demo.app" in found and "dit_demo.cli" in found
    assert max(layer_of(m) for m in found) > layer_of("dit_demo.engine.generate")
