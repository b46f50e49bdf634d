"""The package's layering: no import cycles, and MLflow-specific code one way only.

Imports are read from the source (every ``import`` statement, including those inside functions,
which the code uses to stay lazy): a lazy import is still a dependency. Imports under
``if TYPE_CHECKING:`` are left out: they are never executed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "benchmark"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The ``benchmark`` modules that module ``name`` imports, anywhere in its source."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            # ``from benchmark import tracking`` imports the module benchmark.tracking.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in MODULES and target != name)
    return found


def runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


GRAPH = {name: imports_of(name) for name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = "open", stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*stack[stack.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node], _ = "done", stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_is_read():
    # The walk itself must see the package's real dependencies, or the tests below prove nothing.
    assert "benchmark.tracking" in GRAPH["benchmark.runner"]
    assert "benchmark.audio_model" in GRAPH["benchmark.tracking"]
    assert "benchmark.models.registry" in GRAPH["benchmark.models.cnn2d"]


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_no_import_cycle_among_benchmark_modules():
    assert find_cycle(GRAPH) is None


def reaches(start: str, graph=GRAPH) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


@pytest.mark.parametrize(("lower", "upper"), [
    ("benchmark.tracking", "benchmark.serving"),
    ("benchmark.tracking", "benchmark.report"),
    ("benchmark.tracking", "benchmark.cli"),
    ("benchmark.unit", "benchmark.tracking"),  # the per-run function is MLflow-free
    ("benchmark.models", "benchmark.tracking"),
    ("benchmark.data.prepare", "benchmark.tracking"),
    ("benchmark.data.preprocessing", "benchmark.serving"),
])
def test_layers_import_one_way(lower, upper):
    crossing = sorted(module for module in reaches(lower) | {lower} for target in GRAPH[module]
                      if target == upper or target.startswith(upper + "."))
    assert not crossing, f"{lower} reaches {upper} through {crossing}"


HEAVY = ("keras", "tensorflow", "jax", "torch")


def test_checking_models_and_settings_imports_no_deep_learning_library():
    # The batch process only checks model names and settings (each unit trains in a process of
    # its own): the registry, a config's model check and a unit's setup must not cost TensorFlow's
    # start-up. Keras comes in when a network is built, fitted, saved, loaded or called.
    import subprocess
    import sys

    script = (
        "import sys\n"
        "import benchmark.models as m\n"
        "from benchmark.config import load_experiment\n"
        "c = load_experiment('default')\n"
        "from benchmark.unit import model_setup\n"
        "[model_setup(c, n) for n in c.run.models]\n"
        "m.create_estimator('cnn2d', (96, 431), 10)\n"
        f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=PACKAGE.parent, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
