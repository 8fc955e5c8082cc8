"""Import layering, read from the source (AST of every module, lazy imports included).

- stages and models never import pipeline or cli (a stage knows nothing of Ray or the CLI);
- schemas depend on pyarrow alone (and the standard library);
- no package imports the cli but the cli itself (and `python -m vlprep`);
- no import circles between modules at import time (module-level imports).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import vlprep

ROOT = Path(vlprep.__file__).parent
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Absolute names of the modules a file imports (`from a import b` counts a.b when b is
    a module of ours, else a)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


FILES = {_module_name(p): p for p in ROOT.rglob("*.py")}
MODULES = set(FILES)


def _violations(package: str, allowed) -> list[str]:
    out = []
    for name, path in sorted(FILES.items()):
        if name == package or name.startswith(package + "."):
            out += [f"{name} imports {imp}" for imp in sorted(_imports(path))
                    if not allowed(imp)]
    return out


def _under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_stages_and_models_never_import_pipeline_or_cli():
    for package in ("vlprep.stages", "vlprep.models"):
        assert _violations(package, lambda imp: not _under(
            imp, "vlprep.pipeline", "vlprep.cli", "vlprep.train", "vlprep.export")) == []


def test_schemas_depend_on_pyarrow_alone():
    assert _violations("vlprep.schemas", lambda imp: imp.split(".")[0] in STDLIB
                       or _under(imp, "pyarrow", "vlprep.schemas")) == []


def test_only_the_cli_imports_the_cli():
    bad = [f"{name} imports {imp}" for name, path in sorted(FILES.items())
           if not _under(name, "vlprep.cli") and name != "vlprep.__main__"
           for imp in _imports(path) if _under(imp, "vlprep.cli")]
    assert bad == []


def test_no_import_circles_at_import_time():
    graph = {name: {imp for imp in _imports(path, top_level_only=True) if imp in MODULES}
             for name, path in FILES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # a package's __init__ importing its own submodules is how packages are put together
    cycles = [c for c in cycles if not all(_under(m, c[0]) or _under(c[0], m) for m in c)]
    assert cycles == []


def test_the_walk_sees_imports():
    """The checks above can fail: the walk finds a known lazy import and a known edge."""
    assert "vlprep.stages.entities" in MODULES
    assert "vlprep.errors" in _imports(FILES["vlprep.jobs.config"], top_level_only=True)
    assert "vlprep.models.clip" in _imports(FILES["vlprep.stages.clip"])  # inside a method
