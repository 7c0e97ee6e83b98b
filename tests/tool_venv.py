"""checkov and aws-sam-translator, in a venv of their own (.venv-checkov), made on first use.

Both pin libraries the gateway itself depends on (aws-sam-translator: pydantic~=2.13; checkov: urllib3 1.x,
packaging 23), so installing them beside the app would test it against other versions than the layer ships.
They run as subprocesses from their own venv, as the SAM CLI runs from .venv-sam.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-checkov"
REQUIREMENTS = ["checkov>=3.2,<4", "aws-sam-translator>=1.100,<2"]


def tool_python() -> Path:
    """The tools venv's interpreter, creating or updating the venv first unless it holds REQUIREMENTS."""
    python, stamp = VENV / "bin" / "python", VENV / ".installed-stamp"
    wanted = "\n".join(REQUIREMENTS)
    if not stamp.exists() or stamp.read_text() != wanted:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS], check=True)
        stamp.write_text(wanted)  # only once pip succeeded: a broken install is tried again
    return python
