"""The shape of the package, enforced: data flows one way (source → quantize → generate → compare → app / reports /
hub → cli), nothing imports a layer above it, there is no import cycle, no file grows past 400 lines, no package
holds more than 12 modules side by side, and every module is reachable from something that runs."""

from __future__ import annotations

import ast
import functools
import os
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dit_demo"
MAX_LINES = 400
MAX_MODULES_FLAT = 12
# `python -m X`, `accelerate launch -m X`, `[sys.executable, "-m", "X"]`: a module the repo runs by name
RUNS_MODULE = re.compile(r"""-m["',\s]+(dit_demo(?:\.\w+)*)""")
SCANNED_FOR_RUNS = (".md", ".sh", ".py", ".toml", ".yml", ".yaml", ".txt")
SKIPPED_DIRS = {".git", ".venv", "node_modules", "__pycache__", "gallery"}  # gallery/: generated pages

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


def imported_modules(path: Path, module: str, known: dict[str, Path] | None = None) -> set[str]:
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
    modules = package_modules() if known is None else known
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


@functools.cache
def repo_files(suffixes: tuple[str, ...]) -> list[Path]:
    found = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        found += [Path(folder) / name for name in sorted(names) if name.endswith(suffixes)]
    return found


@functools.cache
def entry_points() -> set[str]:
    """The modules something outside the import graph starts: `python -m dit_demo`, the console script
    (pyproject), every `-m dit_demo...` the repo's scripts, docs and tests run, the dispatcher's command table
    (`dit-demo NAME` imports its module by name) and the package's lazy public API (imported by name on first use)."""
    import dit_demo
    from dit_demo.cli.main import COMMANDS

    roots = {"dit_demo.__main__"}
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    roots |= {target.split(":")[0] for target in scripts.values()}
    for path in repo_files(SCANNED_FOR_RUNS):
        roots |= set(RUNS_MODULE.findall(path.read_text(encoding="utf-8", errors="replace")))
    roots |= {f"dit_demo.cli.{module}" for module, _ in COMMANDS.values()}
    return roots | set(dit_demo._PUBLIC.values())


def importers() -> list[Path]:
    """Files outside the package whose imports count: app.py, the hub/ wrappers, bench scripts and the tests."""
    return [ROOT / "app.py", *sorted((ROOT / "hub").glob("*.py")), *repo_files((".py",))]


def unreachable(modules: dict[str, Path], roots: set[str], outside: list[Path]) -> set[str]:
    """Modules no entry point or outside importer reaches through imports. Importing `a.b.c` runs `a.b` and `a`
    first, so a module also reaches its parent packages."""
    graph = {m: imported_modules(path, m, modules) for m, path in modules.items()}
    for module in modules:
        parent = module.rpartition(".")[0]
        if parent in modules:
            graph[module].add(parent)
    todo = {m for m in roots if m in modules}
    for path in outside:
        if path.suffix == ".py" and not path.is_relative_to(PACKAGE):
            todo |= imported_modules(path, "__outside__", modules)
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo |= graph[module] - seen
    return set(modules) - seen


def test_every_module_is_reachable():
    dead = unreachable(package_modules(), entry_points(), importers())
    assert not dead, f"modules nothing imports or runs (delete them, or import them where they belong): {sorted(dead)}"


def test_the_checker_catches_an_orphan_and_an_island(tmp_path):
    """A module nothing imports, and two that import only each other, are dead; a module run by `-m` is not."""
    files = {
        "dit_demo.reports.orphan": "import dit_demo.units\n",
        "dit_demo.reports.island_a": "from dit_demo.reports import island_b\n",
        "dit_demo.reports.island_b": "def f():\n    from dit_demo.reports.island_a import g\n",
        "dit_demo.reports.runnable": "from dit_demo.reports.helper import h\n",
        "dit_demo.reports.helper": "",
    }
    planted = dict(package_modules())
    for module, text in files.items():
        planted[module] = tmp_path / f"{module.rpartition('.')[2]}.py"
        planted[module].write_text(text)
    script = tmp_path / "run.sh"
    script.write_text("python -m dit_demo.reports.runnable\n")
    roots = entry_points() | set(RUNS_MODULE.findall(script.read_text()))
    dead = unreachable(planted, roots, importers())
    assert dead == {"dit_demo.reports.orphan", "dit_demo.reports.island_a", "dit_demo.reports.island_b"}


def packages_over_the_limit(package_dirs: list[Path]) -> dict[str, int]:
    counts = {
        str(d): len([p for p in d.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]) for d in package_dirs
    }
    return {d: n for d, n in counts.items() if n > MAX_MODULES_FLAT}


def test_no_package_holds_more_than_a_dozen_modules_flat():
    packages = sorted(p.parent for p in PACKAGE.rglob("__init__.py"))
    over = packages_over_the_limit(packages)
    assert not over, f"packages with more than {MAX_MODULES_FLAT} modules side by side (split them by concept): {over}"


def test_the_flat_package_check_counts_modules(tmp_path):
    for i in range(MAX_MODULES_FLAT + 1):
        (tmp_path / f"m{i}.py").write_text("")
    (tmp_path / "__init__.py").write_text("")
    assert list(packages_over_the_limit([tmp_path]).values()) == [MAX_MODULES_FLAT + 1]
    (tmp_path / "m0.py").unlink()
    assert packages_over_the_limit([tmp_path]) == {}
