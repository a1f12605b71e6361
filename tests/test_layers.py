"""The package's dependency rules (docs/architecture.md), checked from the source with ast.

Nothing is imported or run: every ``import`` and ``from ... import`` in gsmgw/ is read,
including those inside functions, so a lazy import that only dodges a cycle is a cycle
here too. Imports under ``if TYPE_CHECKING:`` name types for the checker, never run,
and are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "gsmgw"

# Surfaces a caller talks to: none of them may import another (design.md, "doors").
DOORS = ("gsmgw.api", "gsmgw.console", "gsmgw.mqtt", "gsmgw.mail", "gsmgw.smpp")

# Third-party libraries that exactly one place may import.
OWNED = {
    "sqlalchemy": ("gsmgw.store",),
    "alembic": ("gsmgw.store",),
    "psycopg": ("gsmgw.store",),
    "serial": ("gsmgw.transport",),
    "serial_asyncio_fast": ("gsmgw.transport",),
    "aiohttp.web": ("gsmgw.api", "gsmgw.console"),
    # The e-mail door's optional extra (issue 19).
    "aiosmtpd": ("gsmgw.mail",),
    "aiosmtplib": ("gsmgw.mail",),
    "aiomqtt": ("gsmgw.mqtt",),
    "paho": ("gsmgw.mqtt",),
}

# Pure layers: what of gsmgw they may import besides themselves.
PURE = {
    "gsmgw.sms": ("gsmgw.domain", "gsmgw.errors"),
    "gsmgw.at": ("gsmgw.domain", "gsmgw.errors", "gsmgw.sms"),
}

# package -> packages it must never import
FORBIDDEN = {
    "gsmgw.modem": ("gsmgw.store", "gsmgw.pool", "gsmgw.api", "gsmgw.intake", "gsmgw.daemon"),
    "gsmgw.store": ("gsmgw.pool", "gsmgw.modem", "gsmgw.api", "gsmgw.intake", "gsmgw.daemon"),
    "gsmgw.intake": ("gsmgw.pool", "gsmgw.modem", "gsmgw.daemon", *DOORS),
    "gsmgw.pool": ("gsmgw.api", "gsmgw.intake", "gsmgw.daemon", *DOORS),
    "gsmgw.emulator": ("gsmgw.store", "gsmgw.pool", "gsmgw.api", "gsmgw.intake", "gsmgw.daemon"),
}


@dataclass(frozen=True)
class Import:
    src: str  # importing module
    target: str  # imported module (resolved, absolute)
    names: tuple[str, ...]  # names taken with "from X import a, b"
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(ROOT.rglob("*.py")):
        if "migrations" in p.parts:  # alembic scripts: loaded by alembic, not imported
            continue
        out[module_name(p)] = p
    return out


def _resolve(src: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = src.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(name: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    func_lines: set[int] = set()
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    typing_only.add(inner.lineno)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    func_lines.add(inner.lineno)
    for node in ast.walk(tree):
        # An annotation-only import (under ``if TYPE_CHECKING:``) never runs: it names a
        # type for the checker and is no dependency at run time.
        if isinstance(node, ast.Import | ast.ImportFrom) and node.lineno in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, (), node.lineno, node.lineno in func_lines)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, is_pkg, node)
            yield Import(name, target, tuple(a.name for a in node.names), node.lineno,
                         node.lineno in func_lines)


def in_pkg(module: str, pkg: str) -> bool:
    return module == pkg or module.startswith(pkg + ".")


MODS = modules()
ALL = [imp for name, path in MODS.items() for imp in imports_of(name, path)]


def gsmgw_edges() -> dict[str, set[str]]:
    """module -> gsmgw modules it imports (``from pkg import sub`` counts as pkg.sub)."""
    graph: dict[str, set[str]] = {m: set() for m in MODS}
    for imp in ALL:
        if not in_pkg(imp.target, "gsmgw") or imp.src not in graph:
            continue
        targets = [f"{imp.target}.{n}" for n in imp.names if f"{imp.target}.{n}" in MODS]
        if imp.target in MODS and len(targets) < len(imp.names or ("",)):
            targets.append(imp.target)
        for t in targets or [imp.target]:
            if t in MODS and t != imp.src:
                graph[imp.src].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle() -> None:
    graph = gsmgw_edges()
    # A package __init__ that re-exports from its own submodules is not a dependency of
    # those submodules: drop edges from a submodule to its own package's __init__.
    for src, targets in graph.items():
        for t in list(targets):
            if in_pkg(src, t) and (MODS[t].name == "__init__.py"):
                targets.discard(t)
    found = cycles(graph)
    assert not found, "import cycles in gsmgw/: " + "; ".join(" <-> ".join(c) for c in found)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


# Names with a leading underscore that are public API of the libraries they come from.
PUBLIC_UNDERSCORE = frozenset({"_mapping", "_asdict", "_replace", "_fields", "_make", "_SubParsersAction"})


def private_member_uses(name: str, path: Path) -> Iterator[str]:
    """``obj._x`` where nothing in this module defines ``_x``: reaching into another
    module's object (``self.pool._handle_report``) or a library's internals."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    defined: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)):
            continue
        if node.attr in defined or node.attr in PUBLIC_UNDERSCORE:
            continue
        v = node.value
        if isinstance(v, ast.Name) and v.id in ("self", "cls"):
            continue
        yield f"{name}:{node.lineno} uses {ast.unparse(node)}"


def test_no_private_name_across_modules() -> None:
    bad = [
        f"{imp.src}:{imp.line} imports {imp.target}.{n}"
        for imp in ALL
        if in_pkg(imp.target, "gsmgw") and imp.target != imp.src
        for n in imp.names
        if _private(n)
    ]
    bad += [use for name, path in MODS.items() for use in private_member_uses(name, path)]
    bad = sorted(set(bad))
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


@pytest.mark.parametrize("lib", sorted(OWNED))
def test_third_party_owned_by_one_layer(lib: str) -> None:
    owners = OWNED[lib]
    bad = [
        f"{imp.src}:{imp.line} imports {imp.target}"
        for imp in ALL
        if (in_pkg(imp.target, lib) or (imp.target == lib.rpartition(".")[0] and lib.rpartition(".")[2] in imp.names))
        and not any(in_pkg(imp.src, o) for o in owners)
    ]
    assert not bad, f"only {', '.join(owners)} may import {lib}:\n" + "\n".join(bad)


@pytest.mark.parametrize("pkg", sorted(PURE))
def test_pure_layers_import_only_their_base(pkg: str) -> None:
    allowed = (pkg, *PURE[pkg])
    bad = [
        f"{imp.src}:{imp.line} imports {imp.target}"
        for imp in ALL
        if in_pkg(imp.src, pkg) and in_pkg(imp.target, "gsmgw")
        and not any(in_pkg(imp.target, a) for a in allowed)
    ]
    assert not bad, f"{pkg} is pure and may import only {allowed}:\n" + "\n".join(bad)


@pytest.mark.parametrize("pkg", sorted(FORBIDDEN))
def test_dependencies_point_downward(pkg: str) -> None:
    bad = [
        f"{imp.src}:{imp.line} imports {imp.target}"
        for imp in ALL
        if in_pkg(imp.src, pkg) and any(in_pkg(imp.target, f) for f in FORBIDDEN[pkg])
    ]
    assert not bad, f"{pkg} must not import {FORBIDDEN[pkg]}:\n" + "\n".join(bad)


def test_doors_do_not_import_each_other() -> None:
    bad = [
        f"{imp.src}:{imp.line} imports {imp.target}"
        for imp in ALL
        for door in DOORS
        if in_pkg(imp.src, door)
        for other in DOORS
        if other != door and in_pkg(imp.target, other)
    ]
    assert not bad, "a door imports another door:\n" + "\n".join(bad)


def test_the_checker_sees_a_cycle() -> None:
    """The rule test itself must be able to fail."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
