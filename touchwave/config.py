"""Runtime configuration, read from the environment.

Everything an operator sets is an environment variable prefixed `TOUCHWAVE_`; the
defaults give the embedded stack (SQLite file under `var/`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from touchwave.errors import StoreUnavailable, UserError

#: The repository root: templates, their schema and the demo catalog live beside the package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_ROOT / "campaign_templates"
SCHEMA_PATH = TEMPLATES_DIR / "schema" / "flowchart.schema.json"

DEFAULT_VAR_DIR = Path("var")
DEFAULT_SQLITE_FILE = "touchwave.db"


def hide_password(url: str) -> str:
    """The URL as it may be shown in a message or a log."""
    return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)


def normalise_database_url(url: str) -> str:
    """Pick the driver we ship: `postgresql://` means psycopg 3, not psycopg2."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StoreUnavailable(
            f"cannot use the database URL {hide_password(url)!r} ({exc}); give one such as "
            "sqlite:///var/touchwave.db or postgresql://user@host:5432/db"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@dataclass(frozen=True)
class Settings:
    database_url: str
    var_dir: Path
    #: True when the operator named a database (env or flag) rather than taking the default.
    database_configured: bool
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui: str = "http://127.0.0.1:8233"
    task_queue: str = "touchwave-campaigns"
    sms_gateway_url: str = "http://127.0.0.1:8100"
    call_centre_url: str = "http://127.0.0.1:8100"
    api_url: str = "http://127.0.0.1:8000"
    #: messages per second the SMS gateway accepts from us
    sms_rate: float = 2000.0
    #: the billing system (BOSS/CRM) that takes accepted offers as orders, and its pace
    boss_url: str = "http://127.0.0.1:8100"
    boss_rate: float = 200.0
    #: where the big-data platform drops the daily tag file (tags_YYYYMMDD.csv[.gz])
    tag_drop_dir: Path = DEFAULT_VAR_DIR / "tag_drops"
    #: the operator's time zone: which day a drop belongs to (and, later, quiet hours)
    timezone: str = "Asia/Shanghai"
    #: channel → task queue of workers of its own (a gateway with its own rate limit)
    channel_queues: dict[str, str] = field(default_factory=dict)
    #: a worker serving only these channels' queues (empty: the campaign worker)
    worker_channels: tuple[str, ...] = ()
    #: where a worker serves its Prometheus metrics, and Temporal's SDK metrics (None: not at all)
    metrics_port: int | None = None
    sdk_metrics_port: int | None = None

    @classmethod
    def from_env(cls, database_url: str | None = None) -> Settings:
        var_dir = Path(os.environ.get("TOUCHWAVE_VAR_DIR", DEFAULT_VAR_DIR))
        url = database_url or os.environ.get("TOUCHWAVE_DATABASE_URL")
        configured = bool(url) or (var_dir / DEFAULT_SQLITE_FILE).exists()
        if not url:
            url = f"sqlite:///{var_dir / DEFAULT_SQLITE_FILE}"
        env = os.environ.get
        return cls(
            database_url=normalise_database_url(url),
            var_dir=var_dir,
            database_configured=configured,
            temporal_address=env("TOUCHWAVE_TEMPORAL_ADDRESS", cls.temporal_address),
            temporal_namespace=env("TOUCHWAVE_TEMPORAL_NAMESPACE", cls.temporal_namespace),
            temporal_ui=env("TOUCHWAVE_TEMPORAL_UI", cls.temporal_ui),
            task_queue=env("TOUCHWAVE_TASK_QUEUE", cls.task_queue),
            sms_gateway_url=env("TOUCHWAVE_SMS_GATEWAY_URL", cls.sms_gateway_url),
            call_centre_url=env("TOUCHWAVE_CALL_CENTRE_URL", cls.call_centre_url),
            api_url=env("TOUCHWAVE_API_URL", cls.api_url),
            sms_rate=float(env("TOUCHWAVE_SMS_RATE", cls.sms_rate)),
            boss_url=env("TOUCHWAVE_BOSS_URL", cls.boss_url),
            boss_rate=float(env("TOUCHWAVE_BOSS_RATE", cls.boss_rate)),
            tag_drop_dir=Path(env("TOUCHWAVE_TAG_DROP_DIR", var_dir / "tag_drops")),
            timezone=env("TOUCHWAVE_TIMEZONE", cls.timezone),
            channel_queues=_pairs("TOUCHWAVE_CHANNEL_QUEUES", env("TOUCHWAVE_CHANNEL_QUEUES", "")),
            worker_channels=tuple(c.strip() for c in env("TOUCHWAVE_WORKER_CHANNELS", "").split(",") if c.strip()),
            metrics_port=_port("TOUCHWAVE_METRICS_PORT", env("TOUCHWAVE_METRICS_PORT")),
            sdk_metrics_port=_port("TOUCHWAVE_SDK_METRICS_PORT", env("TOUCHWAVE_SDK_METRICS_PORT")),
        )


def _pairs(name: str, raw: str) -> dict[str, str]:
    """`sms=touchwave-sms,outbound=touchwave-outbound` as a dict."""
    pairs = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UserError(f"{name}: {item!r} is not channel=queue (e.g. sms=touchwave-sms)")
        pairs[key.strip()] = value.strip()
    return pairs


def _port(name: str, raw: str | None) -> int | None:
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise UserError(f"{name}: {raw!r} is not a port number")
    return int(raw)
