"""The layers depend one way (docs/architecture.md), read from every module's imports.

From the bottom: core <- zoo <- training (the `larq_irnet.training` subpackage, distillation);
converters use core and zoo only; the top (report, demo, cli, and the package root,
the users' entry point that re-exports) may import anything. The lab (`benchmarks/`, not
installed) sits beside the package: nothing installed imports or names it. No two
modules import each other, directly or round a longer loop; no function of the installed
package is longer than a screen (`MAX_FUNCTION_LINES`).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Where each folder installs (setup.py's package_dir).
PACKAGES = {
    "larq_irnet": "larq_irnet",
    "zoo": "larq_irnet.zoo",
    "converters": "larq_irnet.converters",
}

#: The layer of every module; a module missing here fails `test_every_module_has_a_layer`.
LAYERS = {
    "larq_irnet": "top",
    "larq_irnet._keras": "core",
    "larq_irnet.quantizers": "core",
    "larq_irnet.callbacks": "core",
    "larq_irnet.information": "core",
    "larq_irnet.io": "core",
    "larq_irnet.legacy_h5": "core",
    "larq_irnet.estimators": "core",
    "larq_irnet.schedules": "core",
    "larq_irnet.layers": "core",
    "larq_irnet.methods": "core",
    "larq_irnet._validation": "core",
    "larq_irnet.transform": "core",
    "larq_irnet.zoo": "zoo",
    "larq_irnet.training": "training",
    "larq_irnet.distillation": "training",
    "larq_irnet.converters": "converters",
    "larq_irnet.report": "top",
    "larq_irnet.demo": "top",
    "larq_irnet.cli": "top",
}
#: Modules split off later land in their package's layer unless listed above.
PREFIX_LAYERS = {
    "larq_irnet.zoo.": "zoo",
    "larq_irnet.converters.": "converters",
    "larq_irnet.training.": "training",
}

#: What each layer may import.
ALLOWED = {
    "core": {"core"},
    "zoo": {"core", "zoo"},
    "training": {"core", "zoo", "training"},
    "converters": {"core", "zoo", "converters"},
    "top": {"core", "zoo", "training", "converters", "top"},
}

#: Wrong-way imports tolerated while they are being removed: none are left (issue #15).
#: The test fails on any import not listed here.
KNOWN_WRONG_WAY: set[tuple[str, str]] = set()


def layer_of(module):
    if module in LAYERS:
        return LAYERS[module]
    for prefix, layer in sorted(PREFIX_LAYERS.items(), key=lambda item: -len(item[0])):
        if module.startswith(prefix) or module == prefix.rstrip("."):
            return layer
    return None


def project_modules():
    """{module name: path} of every module of larq_irnet/, zoo/ and converters/."""
    modules = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


def imported_modules(module, path, known):
    """The project modules `module` imports (at any depth of its code), by AST."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                origin = f"{base}.{node.module}" if node.module else base
            else:
                origin = node.module
            # `from package import submodule` imports the submodule.
            names = [
                f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else origin
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            # The deepest project module that the dotted name starts with.
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_edges():
    modules = project_modules()
    return {
        (module, imported)
        for module, path in modules.items()
        for imported in imported_modules(module, path, set(modules))
    }


def test_every_module_has_a_layer():
    assert [m for m in project_modules() if layer_of(m) is None] == []


def test_layers_depend_one_way():
    wrong = sorted(
        (module, imported)
        for module, imported in import_edges()
        if layer_of(imported) not in ALLOWED[layer_of(module)]
        and (module, imported) not in KNOWN_WRONG_WAY
    )
    assert wrong == [], "\n".join(
        f"{m} ({layer_of(m)}) imports {i} ({layer_of(i)})" for m, i in wrong
    )


def test_known_wrong_way_imports_are_still_real():
    # An entry whose import is gone must be deleted, so the list never hides a new one.
    assert KNOWN_WRONG_WAY - import_edges() == set()


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from larq_irnet import data", {"larq_irnet.data"}),
        ("from larq_irnet.zoo.presets import conv_settings", {"larq_irnet.zoo"}),
        ("import larq_irnet", {"larq_irnet"}),
        ("def f():\n    from larq_irnet.report import write_report", {"larq_irnet.report"}),
        ("from . import io", {"larq_irnet.io"}),
        ("import numpy as np", set()),
    ],
)
def test_imports_are_read_at_any_depth(tmp_path, source, expected):
    path = tmp_path / "module.py"
    path.write_text(source)
    known = {
        "larq_irnet",
        "larq_irnet.data",
        "larq_irnet.zoo",
        "larq_irnet.report",
        "larq_irnet.io",
    }
    assert imported_modules("larq_irnet.quantizers", path, known) == expected


def lab_names():
    """What names the lab: `benchmarks/`, its scripts as modules, its results files."""
    scripts = {path.stem for path in (ROOT / "benchmarks").glob("*.py")}
    results = {path.name for path in (ROOT / "benchmarks").rglob("*.json")}
    return scripts, results


def test_nothing_installed_imports_or_names_the_lab():
    scripts, results = lab_names()
    found = []
    for module, path in project_modules().items():
        text = path.read_text(encoding="utf-8")
        if "benchmarks" in text:
            found.append((module, "names benchmarks/"))
        found += [(module, f"names {name}") for name in sorted(results) if name in text]
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue
            found += [(module, f"imports {n}") for n in names if n.split(".")[0] in scripts]
    assert found == []


def test_no_import_cycles():
    # Imports at any depth count (one inside a function is a cycle all the same).
    graph: dict[str, set[str]] = {}
    for module, imported in import_edges():
        graph.setdefault(module, set()).add(imported)

    def loop_from(start):
        """A path start -> ... -> start, or None (depth first)."""
        stack, seen = [(start, (start,))], set()
        while stack:
            module, path = stack.pop()
            for imported in sorted(graph.get(module, ())):
                if imported == start:
                    return path + (start,)
                if imported not in seen:
                    seen.add(imported)
                    stack.append((imported, path + (imported,)))
        return None

    loops = {loop for loop in map(loop_from, sorted(graph)) if loop}
    assert loops == set(), "\n".join(" -> ".join(loop) for loop in sorted(loops))


#: The longest a function of the installed package may be, in lines from `def` to its
#: end (docstring included): a screen, as Larq's longest.
MAX_FUNCTION_LINES = 60

#: Functions longer than that today (issue 25), with their length then. An entry may only
#: shrink: the test fails when a listed function grows, when a new one is over the limit,
#: and when a listed one is gone or fits (then delete its entry).
KNOWN_LONG_FUNCTIONS: dict[str, int] = {
    "larq_irnet.converters.lce:convert": 108,
    "larq_irnet.converters.lce:fold_weight_computations": 102,
    "larq_irnet.training.data.pipelines:make_dataset": 95,
    "larq_irnet.converters.cli:add_parser": 91,
    "larq_irnet.training.data.pipelines:array_dataset": 83,
    "larq_irnet.zoo.common:build_model": 82,
    "larq_irnet.converters.report:build_report": 76,
    "larq_irnet.converters.evaluate:evaluate_tflite": 75,
    "larq_irnet.zoo.resnet:IRNetResNet18": 72,
    "larq_irnet.converters.report:_map_layers": 72,
    "larq_irnet.converters.flatbuffer:read_graph": 69,
    "larq_irnet.converters.benchmark:_benchmark_model": 69,
    "larq_irnet.zoo.resnet:_resnet": 64,
    "larq_irnet.transform:irnetify": 64,
    "larq_irnet.quantizers:libra_standardize": 63,
    "larq_irnet.zoo.resnet:IRNetResNet20": 61,
}


def function_lengths():
    """{"module:Class.function": lines} of every function of the installed package."""
    lengths = {}

    def visit(node, module, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{module}:{prefix}{child.name}"
                lengths[name] = child.end_lineno - child.lineno + 1
                visit(child, module, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, module, f"{prefix}{child.name}.")

    for module, path in project_modules().items():
        visit(ast.parse(path.read_text(encoding="utf-8")), module, "")
    return lengths


def test_functions_fit_on_a_screen():
    lengths = function_lengths()
    problems = [
        f"{name}: {lines} lines (at most {KNOWN_LONG_FUNCTIONS.get(name, MAX_FUNCTION_LINES)})"
        for name, lines in sorted(lengths.items())
        if lines > KNOWN_LONG_FUNCTIONS.get(name, MAX_FUNCTION_LINES)
    ]
    problems += [
        f"{name}: listed in KNOWN_LONG_FUNCTIONS but "
        + ("gone" if name not in lengths else f"{lengths[name]} lines now; delete its entry")
        for name in sorted(KNOWN_LONG_FUNCTIONS)
        if lengths.get(name, 0) <= MAX_FUNCTION_LINES
    ]
    assert problems == [], "\n".join(problems)
