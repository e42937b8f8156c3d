"""Opening a CSV a user named: a missing file or missing columns are their mistake, said plainly."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from touchwave.errors import UserError


@contextmanager
def open_csv(path: str | Path, required: tuple[str, ...]) -> Iterator[csv.DictReader]:
    """A DictReader over `path` (UTF-8, with or without BOM) whose header has `required`."""
    try:
        handle = Path(path).open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}: the header lacks the column(s) {', '.join(missing)}")
        yield reader
