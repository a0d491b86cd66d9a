"""The layout keeps its rules: imports point one way, nothing imports in a circle, services never import tasks.

Layers, lowest first: core and accounts < loyalty < concierge, events, community < console < demo.
Inside loyalty the domains are customers < segmentation < programmes < retention < ingestion (ingestion
sits on top because a churned customer in a feed ends memberships and records retention outcomes). The
modules at loyalty's root (models, api, admin, urls, apps, management commands) only gather the domains."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"tests", "migrations", "bench", ".venv", "var", ".git"}
LOYALTY_ORDER = ["customers", "segmentation", "programmes", "retention", "ingestion"]
# core and accounts form the foundation (auth classes read users and API keys); the apps sit above them.
APP_ORDER = {
    "core": 0,
    "accounts": 0,
    "loyalty": 1,
    "concierge": 2,
    "events": 2,
    "community": 2,
    "console": 3,
    "demo": 4,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if set(rel.parts) & SKIP or rel.parts[0] in {"config", "manage.py"}:
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(module: str) -> set[str]:
    """Project modules that `module` imports, anywhere in the file (function-level imports count too)."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    resolved = set()
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            resolved.add(name)
    return resolved


GRAPH = {module: _imports(module) for module in MODULES}


def _domain(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "loyalty" and len(parts) > 1 and parts[1] in LOYALTY_ORDER:
        return parts[1]
    return None


def test_no_import_circles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert circles == []


def test_loyalty_domains_import_only_downwards():
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if (source := _domain(module))
        for target in targets
        if (dest := _domain(target)) and LOYALTY_ORDER.index(dest) > LOYALTY_ORDER.index(source)
    )
    assert wrong == []


def test_loyalty_domains_do_not_use_the_gathering_modules():
    """Inside a domain, models come from their own domain's module, not from `loyalty.models` (which holds all)."""
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if _domain(module)
        for target in targets
        if target in {"loyalty.models", "loyalty.api", "loyalty.admin", "loyalty.apps"}
    )
    assert wrong == []


def test_apps_import_only_downwards():
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if module.split(".")[0] in APP_ORDER
        for target in targets
        if target.split(".")[0] in APP_ORDER and APP_ORDER[target.split(".")[0]] > APP_ORDER[module.split(".")[0]]
    )
    assert wrong == []


def test_services_never_import_tasks():
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if ".services" in module or module.endswith("selectors")
        for target in targets
        if target.endswith(".tasks")
    )
    assert wrong == []
