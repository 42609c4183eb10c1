"""The public API and the layout rules of docs/design.md, read from the source (AST) and from a fresh interpreter.

The rules: no import cycles (counting imports inside functions, an import of a package counting as importing
what its ``__init__`` imports); the core (everything but ``cli``, ``plots`` and ``experiments``) imports neither
the CLI, ``plots``, argparse nor matplotlib; no top-level name is defined in two core modules; ``import phasejax``
loads neither matplotlib nor the CLI; every public name of ``phasejax.__all__``-style re-exports resolves.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import phasejax as pj

PKG = Path(pj.__file__).resolve().parent
FACE = ("cli", "plots", "experiments")


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name[: -len(".__init__")] if name.endswith(".__init__") else name] = p
    return out


MODS = _modules()


def _is_face(mod: str) -> bool:
    return any(part in FACE for part in mod.split(".")[1:])


def _imports(mod: str) -> tuple[set[str], set[str]]:
    """(phasejax modules imported anywhere in ``mod``, external top-level packages imported)."""
    path = MODS[mod]
    tree = ast.parse(path.read_text())
    inner, outer = set(), set()
    pkg_parts = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                (inner if a.name.split(".")[0] == "phasejax" else outer).add(a.name if a.name.startswith("phasejax")
                                                                            else a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - (node.level - 1)] + (node.module.split(".") if node.module else [])
                base = ".".join(base)
            else:
                base = node.module or ""
            if not base.startswith("phasejax"):
                outer.add(base.split(".")[0])
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                inner.add(sub if sub in MODS else base)
    return {m for m in inner if m in MODS and m != mod}, outer


def _expand(target: str, seen=None) -> set[str]:
    """A package import stands for what its __init__ imports (transitively)."""
    seen = seen or set()
    if MODS[target].name != "__init__.py" or target in seen:
        return {target}
    seen.add(target)
    out = set()
    for t in _imports(target)[0]:
        out |= _expand(t, seen)
    return out or {target}


def test_no_import_cycles():
    graph = {m: set().union(*[_expand(t) for t in _imports(m)[0]]) - {m} if _imports(m)[0] else set()
             for m in MODS if MODS[m].name != "__init__.py"}
    graph = {m: {t for t in ts if t in graph} for m, ts in graph.items()}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10_000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    assert cycles == []


def test_core_imports_neither_the_cli_nor_plots_nor_argparse_nor_matplotlib():
    bad = []
    for m in MODS:
        if _is_face(m) or m == "phasejax":
            continue
        inner, outer = _imports(m)
        bad += [f"{m} -> {t}" for t in inner if _is_face(t)]
        bad += [f"{m} -> {e}" for e in outer & {"argparse", "matplotlib"}]
    assert bad == []


def test_no_top_level_name_is_defined_in_two_core_modules():
    where = defaultdict(set)
    for m, p in MODS.items():
        if _is_face(m):
            continue
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                where[node.name].add(m)
    assert {n: sorted(ms) for n, ms in where.items() if len(ms) > 1} == {}


def test_import_phasejax_loads_neither_matplotlib_nor_the_cli():
    code = ("import sys, phasejax; bad = [m for m in sys.modules if m.startswith(('matplotlib', 'phasejax.cli', "
            "'phasejax.plots', 'phasejax.experiments'))]; print(bad)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_public_names_are_reexported():
    for name in ("UniformSphere", "PowerLawCap", "Subsphere", "Empirical", "GaussianScores", "gap_observables",
                 "nearest_observables", "ensemble", "seed_curve", "find_peak", "susceptibility", "scaling_scan",
                 "lambda_star", "exact_beta_peak", "finite_n_beta_peak", "fit_tail", "attention_step", "train"):
        assert hasattr(pj, name), name
    for pkg in (pj.laws, pj.theory, pj.estimate, pj.heat, pj.learn, pj.runtime, pj.schedules):
        for name in getattr(pkg, "__all__", [n for n in dir(pkg) if not n.startswith("_")]):
            assert getattr(pkg, name) is not None


def _private_reach(importer: str, target: str) -> str | None:
    """The private part of ``target`` (a module path, or module path + "." + imported name) that ``importer``
    may not use: a ``_x`` component whose enclosing package does not also enclose ``importer``."""
    parts = target.split(".")
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and not part.startswith("__"):
            owner = ".".join(parts[:i])
            if owner in MODS and MODS[owner].name != "__init__.py":  # a private name of a module: its package's
                owner = owner.rpartition(".")[0]
            if not (importer == owner or importer.startswith(owner + ".")):
                return ".".join(parts[: i + 1])
    return None


def test_private_names_stay_inside_their_package():
    """``from ..schedules._config import x`` in phasejax.models reaches into another package's private module;
    ``phasejax._checks``/``_numerics``/``_random`` are private to the whole package and usable everywhere."""
    bad = []
    for mod, path in MODS.items():
        pkg_parts = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = ".".join(pkg_parts[: len(pkg_parts) - (node.level - 1)]
                                + (node.module.split(".") if node.module else []))
            else:
                base = node.module or ""
            if not base.startswith("phasejax"):
                continue
            for a in node.names:
                hit = _private_reach(mod, f"{base}.{a.name}")
                if hit:
                    bad.append(f"{mod} -> {hit}")
    assert bad == []
