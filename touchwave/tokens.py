"""API tokens: who is calling, and in which role.

A token is shown once, when it is created; the store keeps its SHA-256 only. Revoked
tokens stop working at once (every request looks its hash up).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, select, update

from touchwave.errors import UserError
from touchwave.store.models import ApiToken, Role, utcnow


@dataclass(frozen=True)
class Principal:
    """The caller behind a token."""

    user: str
    role: Role

    def may(self, *roles: Role) -> bool:
        return self.role == Role.ADMIN or self.role in roles


@dataclass(frozen=True)
class TokenInfo:
    id: int
    user: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def role_of(name: str) -> Role:
    try:
        return Role(name)
    except ValueError:
        raise UserError(f"{name!r} is not a role ({', '.join(r.value for r in Role)})") from None


def create(engine: Engine, user: str, role: str) -> str:
    """A new token for `user` in `role`; the only time it is seen in clear."""
    if not user.strip():
        raise UserError("a token belongs to someone: give a user name")
    token = "tw_" + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(ApiToken.__table__.insert().values(user_name=user.strip(), role=role_of(role).value,
                                                        token_hash=_hash(token), created_at=utcnow()))
    return token


#: built once: every request of the API runs it
_LIVE_TOKEN = select(ApiToken.user.label("user"), ApiToken.role).where(
    ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))


def verify(conn: Connection, token: str) -> Principal | None:
    """The token's holder, or None for a token that is unknown or revoked."""
    row = conn.execute(_LIVE_TOKEN, {"token_hash": _hash(token)}).first()
    return Principal(row.user, Role(row.role)) if row else None


def listed(engine: Engine) -> list[TokenInfo]:
    with engine.connect() as conn:
        rows = conn.execute(select(ApiToken.id, ApiToken.user.label("user"), ApiToken.role, ApiToken.created_at,
                                   ApiToken.revoked_at).order_by(ApiToken.id)).all()
    return [TokenInfo(r.id, r.user, Role(r.role), r.created_at, r.revoked_at) for r in rows]


def revoke(engine: Engine, token_id: int) -> None:
    with engine.begin() as conn:
        if not conn.execute(update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
                            .values(revoked_at=utcnow())).rowcount:
            raise UserError(f"no live token with id {token_id}")
