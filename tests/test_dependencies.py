"""The package's dependency rule, read from the source (AST), so no change can bring an import cycle
or a hidden import back: every mnet_vision import sits at a module's top level, the module graph
has no cycle, and each room imports only the rooms below it (docs/design.md, "Dependency rule").
That the inference package imports no Lightning is tests/inference/test_load.py's."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mnet_vision"

# room -> the rooms it may import. A room is a subpackage or a top-level module of mnet_vision.
# Read bottom-up: the foundations import nothing of ours, the applications sit on top.
FOUNDATION = {"atomic", "textfiles", "images", "config", "markdown", "locks"}
RULE: dict[str, set[str]] = {
    "atomic": set(),
    "markdown": set(),
    "locks": set(),
    "textfiles": {"atomic"},
    "images": set(),
    "config": set(),
    "stored_config": {"config"},
    "outputs": set(),
    "geo": FOUNDATION,
    "backbones": FOUNDATION,
    "complexity": FOUNDATION,
    "tfjs": FOUNDATION,
    "deploy": FOUNDATION,
    "checkpoints": FOUNDATION | {"backbones", "stored_config", "tfjs"},
    "heads": FOUNDATION | {"backbones", "geo", "checkpoints"},
    "model": FOUNDATION | {"backbones", "heads"},
    "viz": FOUNDATION | {"geo"},
    "data": FOUNDATION | {"geo", "viz", "metrics"},
    "metrics": FOUNDATION | {"geo"},
    "index": FOUNDATION,
    "tasks": FOUNDATION | {"model", "heads", "backbones", "metrics", "data", "viz", "geo", "checkpoints",
                           "training", "inference", "stored_config", "pretrained"},
    "training": FOUNDATION | {"model", "checkpoints", "stored_config", "outputs", "data", "viz", "metrics"},
    "inference": FOUNDATION | {"model", "heads", "backbones", "checkpoints", "stored_config", "outputs", "data",
                               "metrics", "viz", "geo", "index", "deploy"},
    "pretrained": FOUNDATION | {"model", "heads", "backbones", "checkpoints", "stored_config", "outputs", "tfjs",
                                "inference"},
    "faces": FOUNDATION | {"model", "heads", "backbones", "checkpoints", "stored_config", "outputs", "inference",
                           "pretrained", "index", "viz", "deploy"},
    "serving": FOUNDATION | {"model", "heads", "backbones", "checkpoints", "stored_config", "outputs", "inference",
                             "pretrained", "index", "viz", "geo", "deploy", "faces"},
    "predict": FOUNDATION | {"model", "heads", "backbones", "checkpoints", "stored_config", "outputs", "inference",
                             "pretrained", "index", "viz", "geo", "deploy", "faces", "data"},
    "benchmarks": FOUNDATION | {"model", "heads", "backbones", "checkpoints", "data", "metrics", "viz", "geo",
                                "index", "inference", "complexity", "pretrained", "deploy", "faces", "serving",
                                "predict"},
    "cli": FOUNDATION | {"model", "complexity", "checkpoints", "data", "metrics", "viz", "outputs", "training",
                         "inference", "benchmarks", "pretrained", "deploy", "faces", "serving", "predict", "index"},
    "__init__": set(),
}
# the top of the stack, the tools' entry points: nothing imports them (benchmarks, listed by no room
# but cli, is imported by the tools alone)
NOTHING_IMPORTS = {"cli"}


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), str(path))
    return found


MODULES = modules()


def _resolve(name: str) -> str | None:
    """The mnet_vision module ``name`` (a module or a name inside one) refers to."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(tree: ast.Module, module: str) -> list[tuple[str, int, bool]]:
    """``(imported mnet_vision module, line, at top level)`` for every import in ``tree``."""
    top = {id(node) for node in tree.body}
    top |= {id(n) for node in tree.body if isinstance(node, ast.If) for n in node.body}  # if TYPE_CHECKING:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        targets = {_resolve(name) for name in names if name.startswith("mnet_vision")}
        # "from mnet_vision.x import y" names x, and x.y when y is a submodule: keep the deepest
        targets = {t for t in targets if t and not any(o != t and o.startswith(t + ".") for o in targets)}
        found += [(t, node.lineno, id(node) in top) for t in sorted(targets) if t != module]
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_room_is_in_the_rule():
    assert {room(m) for m in MODULES} <= set(RULE), "a new room: add it to RULE (and to docs/design.md)"


def test_no_import_hides_inside_a_function():
    hidden = [f"{module}:{line} imports {target}" for module, tree in MODULES.items()
              for target, line, at_top in imports(tree, module) if not at_top]
    assert not hidden, "imports inside functions (a cycle dodged, or a cost hidden):\n" + "\n".join(hidden)


def test_rooms_import_only_the_rooms_below_them():
    wrong = []
    for module, tree in MODULES.items():
        for target, line, _ in imports(tree, module):
            a, b = room(module), room(target)
            if a != b and (b not in RULE.get(a, set()) or b in NOTHING_IMPORTS):
                wrong.append(f"{module}:{line} imports {target} ({a} -> {b})")
    assert not wrong, "imports against the dependency rule:\n" + "\n".join(wrong)


def test_the_module_graph_has_no_cycle():
    # importing a.b.c runs the __init__ of a.b first: those are edges too (but not a module's own
    # packages, which are already running when it is imported)
    graph: dict[str, set[str]] = {}
    for m, tree in MODULES.items():
        edges = set()
        for t, _, _ in imports(tree, m):
            parts = t.split(".")
            for k in range(2, len(parts) + 1):
                package = ".".join(parts[:k])
                if package in MODULES and not (m == package or m.startswith(package + ".")):
                    edges.add(package)
        graph[m] = edges
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_rule_itself_orders_the_rooms():
    """No two rooms may import each other, even through others: with the test above, the rooms
    form layers (data and geo, tasks and training ... can no longer depend on each other both ways)."""
    order: list[str] = []
    left = {a: set(b) - {a} for a, b in RULE.items()}
    while left:
        ready = sorted(a for a, below in left.items() if not below - set(order))
        assert ready, f"the rule has a cycle among {sorted(left)}"
        order += ready
        for a in ready:
            del left[a]
