"""Bearer tokens and roles for every /v1 endpoint: 401 without a valid token, 403 when
the token's role may not do what the endpoint does."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from touchwave import tokens
from touchwave.store.models import Role
from touchwave.tokens import Principal

bearer = HTTPBearer(auto_error=False, description="an API token from `touchwave token create`")


def roles_check(engine: Engine) -> Callable[..., Principal]:
    """`allow(*roles)`: a dependency that yields the caller if their role is one of `roles`."""

    def caller(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
        if credentials is None:
            raise HTTPException(401, "a bearer token is required (touchwave token create)",
                                headers={"WWW-Authenticate": "Bearer"})
        principal = tokens.verify(engine, credentials.credentials)
        if principal is None:
            raise HTTPException(401, "the token is unknown or revoked", headers={"WWW-Authenticate": "Bearer"})
        return principal

    def allow(*roles: Role):
        def check(principal: Principal = Depends(caller)) -> Principal:
            if not principal.may(*roles):
                raise HTTPException(403, f"role {principal.role.value} may not do this "
                                         f"(it takes {' or '.join(r.value for r in roles)})")
            return principal

        return Depends(check)

    return allow
