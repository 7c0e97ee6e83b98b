"""Adding a provider is what README's "Adding a provider" says and nothing else. In a copy of the repository
an invented host (tests/e2e/new_provider: its adapter, simulator, contract test and README row) is put in
place, and the suite run there sees it in GET /v1/providers, in routing, on the local stack and in every
parametrised contract test, with no other file changed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_providers_are_declared_once import providers_table

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NEW = Path(__file__).parent / "new_provider"
NAME = "kestrel"
# Where each piece goes, as the README says.
PLACES = {
    f"layers/common/i2v/providers/{NAME}.py": "adapter.py",
    f"i2v_local/sim_{NAME}.py": "simulator.py",
    f"tests/contract/test_{NAME}.py": "contract.py",
}
# What the suite run in the copy must have passed, at the least (pytest node ids, up to the parameters).
MUST_PASS = [
    f"tests/contract/test_{NAME}.py::",  # its contract test
    f"tests/contract/test_engine.py::test_a_429_to_a_submit_is_handed_back_at_once_with_its_retry_after_and_no_job[{NAME}]",
    f"tests/contract/test_engine.py::test_a_lost_submit_answer_is_an_unknown_outcome_and_the_job_exists[{NAME}]",
    f"tests/contract/test_layering.py::test_a_simulator_imports_nothing_of_the_gateway[sim_{NAME}]",
    f"tests/unit/test_providers_are_declared_once.py::test_every_provider_has_a_simulator_a_contract_test_and_a_readme_row[{NAME}]",
    "tests/unit/test_providers_are_declared_once.py::test_no_file_names_every_host_but_the_readme_and_the_template",
    "tests/e2e/test_providers.py::test_providers_endpoint_lists_capabilities_and_health",  # GET /v1/providers
    # Routed to by name, on the local stack, finished through its signed callback.
    f"tests/e2e/test_providers.py::test_callback_provider_finishes_through_its_callback[{NAME}]",
]


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files as they stand (tracked and new), committed in a repository of their own."""
    dest = tmp_path_factory.mktemp("repo")
    for name in git(ROOT, "ls-files", "-co", "--exclude-standard").splitlines():
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "as it stands")
    return dest


def pytest_in(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    return subprocess.run(
        command, cwd=repo, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def add_the_provider(repo: Path) -> None:
    for place, piece in PLACES.items():
        shutil.copy2(NEW / piece, repo / place)
    readme = (repo / "README.md").read_text(encoding="utf-8")
    end = providers_table(readme).end()
    row = (NEW / "readme_row.md").read_text(encoding="utf-8")
    (repo / "README.md").write_text(readme[:end] + row + readme[end:], encoding="utf-8")


def test_a_new_host_is_its_adapter_simulator_contract_test_and_readme_row(copy: Path) -> None:
    add_the_provider(copy)
    changed = sorted(git(copy, "status", "--porcelain").splitlines())
    assert changed == sorted([" M README.md", *(f"?? {place}" for place in PLACES)])

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy / "layers" / "common"), str(copy)])}
    ran = pytest_in(
        copy,
        env,
        "-rA",
        *("tests/contract", "tests/unit/test_providers_are_declared_once.py", "tests/e2e/test_providers.py"),
        *("-k", f"{NAME} or providers_endpoint or names_every_host"),
    )
    assert ran.returncode == 0, ran.stdout[-4000:]
    passed = [line.removeprefix("PASSED ") for line in ran.stdout.splitlines() if line.startswith("PASSED ")]
    for wanted in MUST_PASS:
        assert any(node.startswith(wanted) for node in passed), f"{wanted} did not run and pass"

    # The shared suite ran for it: every one of its tests passed or was skipped for a capability it lacks.
    def engine_ids(lines: list[str]) -> list[str]:
        return [
            n
            for n in lines
            if n.startswith("tests/contract/test_engine.py::")
            and re.search(rf"\[(?:.*-)?{NAME}(?:-.*)?\]$", n)
        ]

    collected = pytest_in(copy, env, "--co", "tests/contract/test_engine.py", "-k", NAME).stdout.splitlines()
    skipped = [
        line for line in ran.stdout.splitlines() if re.match(rf"SKIPPED .*test_engine\.py:\d+: {NAME}:", line)
    ]
    assert len(engine_ids(passed)) + len(skipped) == len(engine_ids(collected)) >= 12
