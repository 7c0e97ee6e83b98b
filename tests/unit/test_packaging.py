"""Facts kept in two places must agree: the layer's requirements and the package's dependencies."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def names(lines: list[str]) -> set[str]:
    return {
        re.split(r"[\[<>=!~ ]", line.strip(), maxsplit=1)[0].lower()
        for line in lines
        if line.strip() and not line.startswith("#")
    }


def test_layer_requirements_match_the_runtime_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = names(project["dependencies"]) - {"boto3"}  # the Lambda runtime ships boto3
    layer = names((ROOT / "layers/common/requirements.txt").read_text().splitlines())
    assert layer == declared


LOCAL_ONLY = {"i2v_local", "i2v_cli", "moto", "av", "numpy", "rich", "werkzeug", "yaml"}


def test_the_layer_package_imports_nothing_that_only_the_local_stack_has() -> None:
    found = set()
    for path in (ROOT / "layers/common/i2v").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            found |= {(path.name, name) for name in names if name.split(".")[0] in LOCAL_ONLY}
    assert found == set()


def test_the_layer_build_copies_the_package_and_deletes_only_anyio() -> None:
    recipe = (ROOT / "layers/common/Makefile").read_text()
    assert 'cp -r i2v "$(ARTIFACTS_DIR)/python/"' in recipe
    removals = re.findall(r"^\s*rm\s.*$|\s-delete\b.*$", recipe, re.MULTILINE)
    assert [r.strip() for r in removals] == [
        'rm -rf "$(ARTIFACTS_DIR)/python/anyio" "$(ARTIFACTS_DIR)"/python/anyio-*.dist-info'
    ]
    assert not (ROOT / "layers/common/i2v/local").exists()


def test_what_lambda_runs_uses_only_httpx_sync_client_so_the_layer_needs_no_anyio() -> None:
    """httpx's async client is the only user of anyio, which the layer leaves out (httpcore would import it
    at every cold start)."""
    sources = [*(ROOT / "layers/common/i2v").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    assert len(sources) > 20
    uses = [
        p.name
        for p in sources
        if re.search(r"\banyio\b|AsyncClient|AsyncHTTPTransport|\basync def\b", p.read_text())
    ]
    assert uses == []


def test_the_layer_is_precompiled_by_the_runtimes_python_with_unchecked_hash_pyc() -> None:
    """Lambda's layer is read-only: a module without a usable .pyc would be compiled on every cold start."""
    recipe = (ROOT / "layers/common/Makefile").read_text()
    runtime = re.search(r"^\s+Runtime: python(\d+\.\d+)$", (ROOT / "template.yaml").read_text(), re.MULTILINE)
    assert runtime is not None
    assert f"LAMBDA_PYTHON := {runtime.group(1)}" in recipe
    assert re.search(r'"\$\(RUNTIME_PYTHON\)" -m compileall .*--invalidation-mode unchecked-hash', recipe)
    assert "--no-compile" in recipe  # pip's own .pyc would be for the Python running pip


def test_the_layer_ships_no_xray_sdk_and_so_no_second_botocore() -> None:
    layer = (ROOT / "layers/common/requirements.txt").read_text().lower()
    assert "[tracer]" not in layer
    assert "xray" not in layer
    handlers = list((ROOT / "functions").rglob("handler.py"))
    assert len(handlers) == 7
    assert [path for path in handlers if "Tracer" in path.read_text()] == []


def test_make_bench_finds_every_benchmark_p1_to_p9() -> None:
    from benchmarks.__main__ import available

    assert list(available()) == [f"p{n}" for n in range(1, 10)]
