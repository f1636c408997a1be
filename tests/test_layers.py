"""The layer order of DESIGN §1, enforced on the package's import graph (read with ``ast``: no
module is imported to build it).

Every module of ``geo_med_sr`` (and of ``adapters/``, installed as ``geo_med_sr.adapters``)
belongs to one layer; an import may point only to its own layer or a lower one, and the graph
has no cycle. Every import counts, also those inside functions (lazy imports are still
dependencies); only ``if TYPE_CHECKING:`` blocks are left out of the layer order, because they
never run (they name types for annotations), but they count for cycles: two modules that name
each other's types are one tangle. Adapters sit beside the core: they see only the data model
(errors, geometry, scale, spatial, the engine's protocols and in-memory arrays), and they are
the only modules that import the I/O libraries.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = "geo_med_sr"
SOURCES = {PACKAGE: REPO / "geo_med_sr", f"{PACKAGE}.adapters": REPO / "adapters"}

#: lowest first; a module matches the longest prefix listed (``a.b`` covers ``a.b.c``).
LAYERS: list[tuple[str, list[str]]] = [
    (
        "ground",
        [
            "",
            "errors",
            "registry",
            "schema",
            "provenance",
            "dtypes",
            "digest",
            "optional",
            "options_check",
            "models.weights",
            "samples",
        ],
    ),
    ("geometry", ["geometry", "multires", "scale", "normalize"]),
    ("spatial", ["spatial"]),
    ("metrics", ["metrics"]),
    ("models", ["degrade", "slice_profile", "networks", "models"]),
    ("inference", ["inference", "adapters", "io"]),
    ("training", ["training", "guidance"]),
    ("tools", ["upscale", "sharpening", "pacs", "info"]),
    ("shells", ["cli", "__main__"]),
]
#: what adapters may import from the project (besides other adapters).
ADAPTER_DEPENDENCIES = {
    "",
    "errors",
    "registry",
    "schema",
    "dtypes",
    "geometry",
    "multires",
    "scale",
    "spatial",
    "inference.protocols",
    "inference.arrays",
}
#: I/O libraries only adapters may import (and, for the DICOM ones, ``pacs/``: DESIGN §1).
IO_LIBRARIES = {"rasterio", "rio_cogeo", "nibabel", "pydicom", "SimpleITK", "pynetdicom", "dicomweb_client"}
#: the DICOM libraries ``pacs/`` (DIMSE and DICOMweb networking) may import besides adapters.
PACS_LIBRARIES = {"pydicom", "pynetdicom", "dicomweb_client"}
#: ``guidance/`` registers and resamples a guide volume with SimpleITK (its registration framework, not its file I/O).
GUIDANCE_LIBRARIES = {"SimpleITK"}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the installed package."""
    out = {}
    for prefix, root in SOURCES.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([prefix, *parts])] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(tree: ast.AST, typing: bool = False):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (kept with ``typing=True``)."""
    for node in ast.iter_child_nodes(tree):
        if not typing and isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield child
                yield from _walk(child, typing)
            continue
        yield node
        yield from _walk(node, typing)


def imports(module: str, typing: bool = False) -> tuple[set[str], set[str]]:
    """``(project modules, top-level third-party names)`` that ``module`` imports; with
    ``typing=True`` the imports under ``if TYPE_CHECKING:`` count too."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    project, external = set(), set()
    for node in _walk(ast.parse(path.read_text(), str(path)), typing):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                while name not in MODULES:  # a name inside a module: the module
                    name = name.rpartition(".")[0]
                if name != module:
                    project.add(name)
            else:
                external.add(name.split(".")[0])
    return project, external


GRAPH = {module: imports(module) for module in MODULES}
#: the same graph with the type-only imports: a cycle through annotations is still a cycle.
TYPED_GRAPH = {module: imports(module, typing=True) for module in MODULES}


def relative(module: str) -> str:
    return module[len(PACKAGE) + 1 :] if module != PACKAGE else ""


def layer_of(module: str) -> int:
    name, best, level = relative(module), -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            covers = name == prefix or (prefix and name.startswith(prefix + "."))
            if covers and len(prefix) > best:
                best, level = len(prefix), index
    if level is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py (and DESIGN §1)")
    return level


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_imports_point_down_the_layers():
    upward = []
    for module, (project, _) in GRAPH.items():
        for target in project:
            if layer_of(target) > layer_of(module):
                upward.append(
                    f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
                )
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def _cycles(graph: dict[str, tuple[set[str], set[str]]]) -> list[list[str]]:
    """Strongly connected components of more than one module of ``graph`` (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node][0]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle():
    assert _cycles(GRAPH) == []


def test_no_import_cycle_through_annotations():
    """``if TYPE_CHECKING:`` imports count here: two modules that name each other's types are
    one tangle, whatever runs at import time."""
    assert _cycles(TYPED_GRAPH) == []


def test_the_cycle_finder_finds_cycles():
    graph = {"a": ({"b"}, set()), "b": ({"c"}, set()), "c": ({"a"}, set()), "d": ({"a"}, set())}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_adapters_see_only_the_data_model():
    wrong = []
    for module, (project, _) in GRAPH.items():
        if relative(module).startswith("adapters"):
            for target in project:
                name = relative(target)
                if not (name in ADAPTER_DEPENDENCIES or name.startswith("adapters")):
                    wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_only_adapters_import_io_libraries():
    wrong = [
        f"{module} imports {sorted(external & IO_LIBRARIES)}"
        for module, (_, external) in GRAPH.items()
        if external & IO_LIBRARIES
        and not relative(module).startswith("adapters")
        and not (relative(module).startswith("pacs") and external & IO_LIBRARIES <= PACS_LIBRARIES)
        and not (relative(module).startswith("guidance") and external & IO_LIBRARIES <= GUIDANCE_LIBRARIES)
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    "source,expected",
    [
        ("from .x import y\n", {"geo_med_sr.x"}),
        ("if TYPE_CHECKING:\n    from .x import y\n", set()),
        ("def f():\n    from . import x\n", {"geo_med_sr.x"}),
    ],
)
def test_the_graph_reader_sees_what_it_should(tmp_path, monkeypatch, source, expected):
    """The checks above can fail: the reader finds relative, lazy and skips type-only imports."""
    (tmp_path / "x.py").write_text("")
    (tmp_path / "m.py").write_text(source)
    monkeypatch.setitem(MODULES, "geo_med_sr.x", tmp_path / "x.py")
    monkeypatch.setitem(MODULES, "geo_med_sr.m", tmp_path / "m.py")
    assert imports("geo_med_sr.m")[0] == expected
    assert imports("geo_med_sr.m", typing=True)[0] == {"geo_med_sr.x"}


@pytest.mark.slow
def test_deciding_what_runs_needs_no_torch(tmp_path):
    """The command line, the configuration, the method and the batch request (what a batch
    worker computes to skip an up-to-date output) never import torch."""
    from geotiff_fixtures import make_geotiff

    src, _ = make_geotiff(tmp_path / "a.tif")
    probe = (
        "import sys\n"
        "from geo_med_sr.cli.main import build_parser\n"
        "from geo_med_sr.upscale.config import SRConfig\n"
        "from geo_med_sr.upscale.methods import resolve_method\n"
        "from geo_med_sr.upscale.request import request_for\n"
        "build_parser()\n"
        "method = resolve_method(SRConfig(), domain='geo', scale=(2, 2))\n"
        f"request = request_for({str(src)!r}, 2, method=method)\n"
        "assert method.weights_sha256 and request['model_sha256'] == method.weights_sha256\n"
        "print(sorted(m for m in ('torch', 'monai') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
