"""A provider is declared once, in its own module: everything else that is "for every provider" derives from
i2v.providers.registry, so adding one is its adapter, its simulator, its contract test and its README row."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from i2v.providers.registry import PROVIDERS
from i2v_local.simulator import simulator_for

ROOT = Path(__file__).resolve().parents[2]
# The hosts of the model; `local`, the embedded renderer, is not one and is a common word besides.
HOSTS = sorted(set(PROVIDERS) - {"local"})
# The files that may name every host: the README (a row each) and the template's default routing order.
MAY_NAME_THEM_ALL = {"README.md", "template.yaml"}


def providers_table(readme: str) -> re.Match[str]:
    """README's table of providers: its rows are group 1, and it ends at the match's end."""
    found = re.search(r"^\| provider \| modes \|.*\n\|[-|]+\|\n((?:\|.*\n)+)", readme, re.MULTILINE)
    assert found is not None, "README has no table of providers"
    return found


def repository_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [ROOT / name for name in listed.stdout.splitlines() if (ROOT / name).is_file()]


def names_every_host(text: str) -> bool:
    return all(re.search(rf"\b{re.escape(name)}\b", text, re.IGNORECASE) for name in HOSTS)


def test_no_file_names_every_host_but_the_readme_and_the_template() -> None:
    assert len(HOSTS) >= 6
    naming = set()
    for path in repository_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary samples
        if names_every_host(text):
            naming.add(str(path.relative_to(ROOT)))
    assert naming <= MAY_NAME_THEM_ALL, naming - MAY_NAME_THEM_ALL


def test_the_template_names_every_host_only_in_its_default_routing_order() -> None:
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    order = re.search(r"DefaultProviders:\n(?:\s+.*\n)*?\s+Default: \"([^\"]*)\"", text)
    assert order is not None
    assert not names_every_host(text.replace(order.group(1), ""))


@pytest.mark.parametrize("name", PROVIDERS)
def test_every_provider_has_a_simulator_a_contract_test_and_a_readme_row(name: str) -> None:
    assert simulator_for(name).__module__ == f"i2v_local.sim_{name}"
    assert (ROOT / "tests" / "contract" / f"test_{name}.py").is_file()
    rows = re.findall(
        r"^\| `([a-z0-9_]+)` \|", (ROOT / "README.md").read_text(encoding="utf-8"), re.MULTILINE
    )
    assert name in rows


def test_a_provider_without_a_simulator_is_named_in_the_error() -> None:
    with pytest.raises(LookupError, match=r"'no-such-host' has no simulator: i2v_local/sim_no-such-host\.py"):
        simulator_for("no-such-host")
