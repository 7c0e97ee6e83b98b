"""What the adapter and simulator modules may depend on, read from their source with `ast`.

Adapters are pure mappings: the mode comes from routing, which also made every capability check. Simulators
stand in for other companies' servers, so they know only what those hosts document, never our model.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from i2v.providers.registry import PROVIDERS

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = sorted(
    {
        ROOT / "layers" / "common" / Path(*declared.adapter.__module__.split(".")).with_suffix(".py")
        for declared in PROVIDERS.values()
    }
)
SIMULATORS = sorted([ROOT / "i2v_local" / "simulator.py", *(ROOT / "i2v_local").glob("sim_*.py")])


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def submit_method(path: Path) -> ast.FunctionDef:
    found = [
        node for node in ast.walk(tree(path)) if isinstance(node, ast.FunctionDef) and node.name == "submit"
    ]
    assert len(found) == 1, f"{path.name} should define one submit"
    return found[0]


def test_the_checks_below_see_every_adapter_module() -> None:
    modules = {path.stem for path in (ROOT / "layers" / "common" / "i2v" / "providers").glob("*.py")}
    shared = {"__init__", "base", "client", "registry"}
    # Every module but the shared ones declares a provider; some reuse another module's adapter (highway).
    assert set(PROVIDERS) == modules - shared
    assert {path.stem for path in ADAPTERS} <= set(PROVIDERS)


@pytest.mark.parametrize("path", ADAPTERS, ids=lambda path: path.stem)
def test_an_adapter_takes_the_mode_routing_resolved(path: Path) -> None:
    submit = submit_method(path)
    assert [arg.arg for arg in submit.args.args] == ["self", "req", "mode", "callback_url"]
    calls = {node.attr for node in ast.walk(tree(path)) if isinstance(node, ast.Attribute)}
    assert "resolved_mode" not in calls


@pytest.mark.parametrize("path", ADAPTERS, ids=lambda path: path.stem)
def test_an_adapter_maps_a_request_and_never_refuses_one(path: Path) -> None:
    raises = [node for node in ast.walk(submit_method(path)) if isinstance(node, ast.Raise)]
    assert raises == [], f"{path.name}: capability refusals belong to routing (Capabilities.refusal)"


def imported_modules(module: ast.Module) -> set[str]:
    """Every module an `import` or `from ... import` names, at any depth (relative imports as ".name")."""
    found: set[str] = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
    return found


def test_the_checks_below_see_every_simulator_module() -> None:
    assert [path.stem for path in SIMULATORS] == sorted(["simulator", *(f"sim_{name}" for name in PROVIDERS)])


@pytest.mark.parametrize("path", SIMULATORS, ids=lambda path: path.stem)
def test_a_simulator_imports_nothing_of_the_gateway(path: Path) -> None:
    gateway = sorted(
        name
        for name in imported_modules(tree(path))
        if name.startswith(".")
        or (name.split(".")[0].startswith("i2v") and name.split(".")[0] != "i2v_local")
    )
    assert gateway == [], f"{path.name} keeps its host's documented limits itself, not the gateway's"
