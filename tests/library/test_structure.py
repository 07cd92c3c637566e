"""The architecture, checked from the import graph: the library imports no UI framework and never the studio,
its modules import each other without cycles, and no module is named like a function the package exports."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import denoise_core

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "denoise_core"
UI_FRAMEWORKS = {"streamlit", "gradio", "gradio_client", "fastapi", "uvicorn", "starlette"}


def _imports(path: Path, package: str) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions, as absolute names."""
    module = f"{package}.{path.stem}" if path.stem != "__init__" else package
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package_parts = module.split(".") if path.stem == "__init__" else module.split(".")[:-1]
                base = ".".join(package_parts[: len(package_parts) - (node.level - 1)])
                found.add(f"{base}.{node.module}" if node.module else base)
                if not node.module:  # from . import a, b: the submodules
                    found.update(f"{base}.{a.name}" for a in node.names)
            else:
                found.add(node.module or "")
                found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {f"denoise_core.{p.stem}": p for p in LIBRARY.glob("*.py") if p.stem != "__init__"}
    return {name: {m for m in _imports(path, "denoise_core") if m in modules and m != name}
            for name, path in modules.items()}


def test_the_library_imports_no_ui_framework_and_never_the_studio():
    for path in LIBRARY.glob("*.py"):
        tops = {m.split(".")[0] for m in _imports(path, "denoise_core")}
        assert not tops & UI_FRAMEWORKS, f"{path.name} imports {tops & UI_FRAMEWORKS}"
        assert "studio" not in tops, f"{path.name} imports the studio"


def test_the_library_has_no_import_cycle():
    graph = _graph()
    # Tarjan's strongly connected components: any component of more than one module is a cycle.
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_cycle_check_sees_function_level_imports(tmp_path):
    """The check must not be blind to the imports inside functions that once hid restore <-> inference."""
    (tmp_path / "a.py").write_text("def f():\n    from .b import g\n")
    assert "pkg.b" in _imports(tmp_path / "a.py", "pkg")
    (tmp_path / "c.py").write_text("from . import d, e\n")
    assert {"pkg.d", "pkg.e"} <= _imports(tmp_path / "c.py", "pkg")


def test_no_module_is_named_like_an_exported_name():
    submodules = {m.name for m in pkgutil.iter_modules(denoise_core.__path__)}
    assert not submodules & set(denoise_core.__all__), submodules & set(denoise_core.__all__)
    for name in denoise_core.__all__:  # and each export is what it says, however it was reached
        assert not isinstance(getattr(denoise_core, name), type(denoise_core))
    assert importlib.import_module("denoise_core.training").train is denoise_core.train


def test_the_studio_imports_the_library_not_the_reverse():
    studio = REPO / "studio"
    uses_library = [p.name for p in studio.glob("*.py") if any(m.startswith("denoise_core") for m in _imports(p, "studio"))]
    assert uses_library, "the studio is built on the library"


def documented_layers() -> list[tuple[str, list[str]]]:
    """docs/design.md's layer table: (layer, modules in import order), bottom layer first."""
    text = (REPO / "docs" / "design.md").read_text()
    table = text.split("<!-- layers:start -->", 1)[1].split("<!-- layers:end -->", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in table.strip().splitlines()[2:]]
    return [(layer.strip(), [m.strip(" `") for m in modules.split(",")]) for layer, modules in rows]


def test_each_module_imports_only_modules_listed_before_it():
    """The layering docs/design.md states: its table lists every library module once, and each module imports
    (at module level or inside a function) only modules listed before it, so no layer reaches up and the
    restore path never loads the training code."""
    order = [f"denoise_core.{m}" for _, modules in documented_layers() for m in modules]
    graph = _graph()
    assert sorted(order) == sorted(graph), ("docs/design.md's layer table and the package differ: "
                                            f"missing {sorted(set(graph) - set(order))}, extra {sorted(set(order) - set(graph))}")
    position = {m: i for i, m in enumerate(order)}
    upward = [f"{m} imports {d}" for m in order for d in sorted(graph[m]) if position[d] > position[m]]
    assert not upward, "imports against the documented order:\n" + "\n".join(upward)
    layer_of = {f"denoise_core.{m}": layer for layer, modules in documented_layers() for m in modules}
    assert not graph["denoise_core.restoration"] & {m for m, layer in layer_of.items() if layer.startswith("training")}


def test_the_order_check_sees_an_upward_import():
    graph = {"a": set(), "b": {"a"}, "c": {"b", "d"}, "d": set()}
    order = ["a", "b", "c", "d"]
    position = {m: i for i, m in enumerate(order)}
    assert [(m, d) for m in order for d in graph[m] if position[d] > position[m]] == [("c", "d")]
