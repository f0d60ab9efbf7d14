"""The package's import graph: no cycles (module-level or inside functions), no sys.path tricks."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "mpnn"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Modules of the package that a file imports anywhere in it (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, set(files)) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    graph = import_graph()
    assert "mpnn.training.run" in graph and graph["mpnn.training.run"]  # the walk sees the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_sys_path_insert():
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("mpnn", "scripts", "tests", "hydra_plugins")
        for path in (REPO / folder).rglob("*.py")
        if "sys.path.insert" in path.read_text() and path != Path(__file__)
    ]
    offenders += ["train.py"] if "sys.path.insert" in (REPO / "train.py").read_text() else []
    assert not offenders


# Layers from the bottom: a module may import its own layer and those below, never one above. The
# facts and helpers at the bottom, then data, models, training, the tools built on training runs, the
# benchmark, and the command lines on top.
LAYERS = [
    ("mpnn.config", "mpnn.files", "mpnn.hydra_resolvers", "mpnn.logs", "mpnn.plain_steps", "mpnn.plots",
     "mpnn.published", "mpnn.recipes", "mpnn.targets"),
    ("mpnn.data",),
    ("mpnn.models", "mpnn.baseline", "mpnn.message_scale", "mpnn.inference"),
    ("mpnn.training",),
    ("mpnn.analysis", "mpnn.compare", "mpnn.diagnostics", "mpnn.sweep_plots"),
    ("mpnn.bench",),
    ("mpnn.cli",),
    ("mpnn",),  # the package's facade (`from mpnn import load_checkpoint`), above all it re-exports
]  # fmt: skip


def layer_of(module: str) -> int:
    """The layer of a module: that of the longest name in LAYERS that is the module or a package above it
    (`mpnn` alone stands for the facade, not for every module under it)."""
    best, level = "", None
    for i, names in enumerate(LAYERS):
        for name in names:
            below = module.startswith(name + ".") and name != "mpnn"
            if (module == name or below) and len(name) > len(best):
                best, level = name, i
    assert level is not None, f"{module} has no layer in LAYERS"
    return level


def test_no_layer_imports_from_a_layer_above_it():
    graph = import_graph()
    upward = [
        f"{module} (layer {layer_of(module)}) imports {dep} (layer {layer_of(dep)})"
        for module, deps in sorted(graph.items())
        for dep in sorted(deps)
        if layer_of(dep) > layer_of(module)
    ]
    assert not upward, "\n".join(upward)


def test_the_layer_check_fails_on_an_upward_import(tmp_path):
    """What the check exists to catch: the data module importing from the models (as it did)."""
    bad = tmp_path / "datamodule.py"
    bad.write_text("from mpnn.models.protocol import MoleculeModel\n")
    deps = imports_of(bad, set(import_graph()))
    assert deps == {"mpnn.models.protocol"} and layer_of("mpnn.models.protocol") > layer_of("mpnn.data.datamodule")
