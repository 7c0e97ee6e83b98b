"""Facts kept in two places must agree: the layer's requirements and the package's dependencies."""

from __future__ import annotations

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
