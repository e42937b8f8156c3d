"""Bearer tokens and roles for every /v1 endpoint: 401 without a valid token, 403 when
the token's role may not do what the endpoint does."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine

from touchwave import tokens
from touchwave.store.models import Role
from touchwave.tokens import Principal

bearer = HTTPBearer(auto_error=False, description="an API token from `touchwave token create`")

Credentials = HTTPAuthorizationCredentials | None


def authorise(conn: Connection, credentials: Credentials, roles: tuple[Role, ...]) -> Principal:
    """The caller, if their token is live and their role is one of `roles`."""
    if credentials is None:
        raise HTTPException(401, "a bearer token is required (touchwave token create)",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = tokens.verify(conn, credentials.credentials)
    if principal is None:
        raise HTTPException(401, "the token is unknown or revoked", headers={"WWW-Authenticate": "Bearer"})
    if not principal.may(*roles):
        raise HTTPException(403, f"role {principal.role.value} may not do this "
                                 f"(it takes {' or '.join(r.value for r in roles)})")
    return principal


def roles_check(engine: Engine) -> Callable[..., Principal]:
    """`allow(*roles)`: a dependency that yields the caller if their role is one of `roles`.
    (An endpoint that reads the store anyway may take `Depends(bearer)` and call
    `authorise` on its own connection instead: one connection and one trip through the
    thread pool per request, which the offer view, read on every walk-in, needs.)"""

    def allow(*roles: Role):
        def check(credentials: Credentials = Depends(bearer)) -> Principal:
            with engine.connect() as conn:
                return authorise(conn, credentials, roles)

        return Depends(check)

    return allow
