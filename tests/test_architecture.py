"""The shape the code keeps: no import cycle between mirformer's modules (type-checking imports
included), dependencies pointing down the layers, and a pipeline that never branches on a
representation's type, a model kind's name or a task's name (they are declarations)."""

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "mirformer"
# Lower layers never import higher ones (the design's "dependencies point down").
LAYERS = [
    {"mirformer", "errors", "atomic", "paths", "registry", "config_tree", "distributed", "streaming"},
    {"audio", "deformations"},
    {"datasets"},
    {"representations", "tasks", "models", "objectives", "stats"},
    {"training", "kinds"},
    {"encoder_file"},
    {"embed", "hear"},
    {"encoder_states"},
    {"experiments"},
    {"cli"},
]


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path) -> set[str]:
    """mirformer modules imported at module level, ``if TYPE_CHECKING:`` blocks included."""
    tree = ast.parse(path.read_text())
    found = set()
    body = list(tree.body)
    while body:
        node = body.pop(0)
        if isinstance(node, ast.If):  # TYPE_CHECKING and other guards
            body += node.body + node.orelse
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mirformer"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mirformer"))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in SRC.rglob("*.py")}
    # ``from mirformer import x`` names the package itself, an edge to nothing: x is the import.
    return {m: {i for i in _top_level_imports(p) if i in modules and i not in (m, "mirformer")}
            for m, p in modules.items()}


def _package(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def test_no_import_cycle():
    graph, state, cycles = _graph(), {}, []

    def visit(m, stack):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n, stack + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    # A package's __init__ importing its own modules, which import the package's base, is how
    # registries fill themselves; any other cycle is a design error.
    cycles = [c for c in cycles if len({_package(m) for m in c}) > 1]
    assert not cycles, cycles


def test_dependencies_point_down():
    level = {name: i for i, names in enumerate(LAYERS) for name in names}
    upward = []
    for m, imported in _graph().items():
        for i in imported:
            a, b = _package(m), _package(i)
            if a != b and level[b] > level[a]:
                upward.append(f"{m} -> {i}")
    assert not upward, upward


def _sources(*exclude: str):
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if not any(rel.startswith(e) for e in exclude):
            yield rel, path.read_text()


@pytest.mark.parametrize("pattern, allowed, what", [
    (r"isinstance\([^)]*(LogMel|VQTokens|VQCodebookVectors|CQT|Waveform)\b", ("representations/",),
     "a representation's type tested"),
    (r'"(spectroformer|tokenformer|codebookformer|patchifier|mfcc-linear)"',
     ("kinds/", "experiments/presets.py", "experiments/config.py", "models/patchifier.py"), "a model kind named"),
    (r'task(\.name|\.kind)?\s*[!=]=\s*"(classification|tagging|regression)"', ("tasks/",), "a task's name branched on"),
])
def test_the_pipeline_branches_on_declarations_only(pattern, allowed, what):
    found = [f"{rel}:{n + 1}" for rel, text in _sources(*allowed)
             for n, line in enumerate(text.splitlines()) if re.search(pattern, line)]
    assert not found, f"{what} outside {allowed}: {found}"
