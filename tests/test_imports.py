"""The package's import graph (issue 28): no circle between its modules,
counting imports inside functions; an import is deferred only for an
optional dependency; no module imports another's private names.

Draw the graph: `python tests/test_imports.py` prints one edge per line
(`module -> module`, `(deferred)` for an import inside a function)."""

import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1] / "keras_recipes"
# What a deferred import may name: dependencies a backend or machine may
# lack (TensorFlow and TFDS on JAX or torch, the backends themselves,
# matplotlib for plots), and our one module that imports TensorFlow at its
# top (the tf.data path).
OPTIONAL = ("tensorflow", "tensorflow_datasets", "jax", "torch", "matplotlib", "IPython",
            "keras_recipes.data.tfdata")


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


NAMES = dict(_modules())


def _imports(name, path):
    """(imported module, imported names, deferred, line) for each import."""
    tree = ast.parse(path.read_text())
    deferred = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    deferred.add(id(inner))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], id(node) in deferred, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in NAMES:  # `from package import module`
                    yield sub, [], id(node) in deferred, node.lineno
                else:
                    yield base, [alias.name], id(node) in deferred, node.lineno


def edges():
    found = []
    for name, path in NAMES.items():
        for target, names, deferred, line in _imports(name, path):
            if target in NAMES and target != "keras_recipes" and target != name:
                found.append((name, target, names, deferred, line))
    return found


def _cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _parent_package(module):
    # A module of a subpackage imports that package's __init__ first: an
    # edge into the package is not one back out of it.
    return module.rpartition(".")[0]


def test_no_import_circle_counting_imports_inside_functions():
    graph = {}
    for source, target, _, _, _ in edges():
        if _parent_package(source) == target:
            continue
        graph.setdefault(source, set()).add(target)
    assert _cycles(graph) == []


def test_deferred_imports_are_optional_dependencies_only():
    offending = []
    for name, path in NAMES.items():
        for target, _, deferred, line in _imports(name, path):
            if deferred and not any(target == o or target.startswith(o + ".") for o in OPTIONAL):
                offending.append(f"{path.relative_to(ROOT.parent)}:{line} imports {target}")
    assert offending == []


def test_no_module_imports_another_modules_private_names():
    offending = [f"{source} imports {n} from {target} (line {line})"
                 for source, target, names, _, line in edges()
                 for n in names if n.startswith("_")]
    assert offending == []


# Issue 28: one concern per module, none over about 450 lines.
MAX_LINES = 460


def test_no_module_is_over_about_450_lines():
    sizes = {str(path.relative_to(ROOT.parent)): len(path.read_text().splitlines())
             for path in NAMES.values()}
    assert {k: v for k, v in sizes.items() if v > MAX_LINES} == {}
    assert max(sizes.values()) > 200  # the count reads the real files


def test_the_checks_see_a_circle_a_deferred_import_and_a_private_name(tmp_path, monkeypatch):
    # The checks above, on a package made to fail each of them.
    package = tmp_path / "keras_recipes"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from keras_recipes import b\n")
    (package / "b.py").write_text("from keras_recipes.a import _hidden\nimport keras_recipes.a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", package)
    monkeypatch.setattr(sys.modules[__name__], "NAMES", dict(_modules()))
    graph = {}
    for source, target, _, _, _ in edges():
        graph.setdefault(source, set()).add(target)
    assert _cycles(graph) == [["keras_recipes.a", "keras_recipes.b"]]
    for check in (test_deferred_imports_are_optional_dependencies_only,
                  test_no_module_imports_another_modules_private_names):
        try:
            check()
        except AssertionError:
            continue
        raise AssertionError(f"{check.__name__} passed on a package made to fail it")


if __name__ == "__main__":
    for source, target, names, deferred, line in sorted(edges()):
        print(f"{source} -> {target}{' (deferred)' if deferred else ''}")
