"""Structured logs (one JSON object a line) with MSISDNs masked.

Phone numbers are personal data: whatever a log record carries, a mainland mobile
number (optionally +86/86-prefixed) is shown as `138****5678`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_MSISDN = re.compile(r"(?<!\d)((?:\+?86)?1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def mask_msisdn(text: str) -> str:
    """Replace the middle four digits of every mobile number in `text`."""
    return _MSISDN.sub(r"\1****\3", text)


class JsonFormatter(logging.Formatter):
    """Render a record and its `extra=` fields as one masked JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return mask_msisdn(json.dumps(entry, ensure_ascii=False, default=str))


def configure(level: str = "INFO") -> None:
    """Send touchwave's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("touchwave")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
