"""Reading a JSON file a user named: a missing file or broken JSON is their mistake, said plainly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from touchwave.errors import UserError


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
