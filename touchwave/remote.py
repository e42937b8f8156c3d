"""The command line as a client of the HTTP API, for the steps that roles govern:
creating, submitting, approving, rejecting, launching, pausing, resuming and cancelling a
campaign, and reading its audit log. The API checks the token's role and writes the
audit row, exactly as for the console; the command prints the API's reason when it
refuses (409 wrong status, 403 wrong role or own campaign, 503 no Temporal)."""

from __future__ import annotations

from typing import Any

import httpx

from touchwave.errors import UserError


class Remote:
    """`TOUCHWAVE_API_URL` with the bearer token `TOUCHWAVE_TOKEN`; `transport` as httpx takes it."""

    def __init__(self, url: str, token: str | None, transport: httpx.BaseTransport | None = None,
                 timeout: float = 30.0) -> None:
        if not token:
            raise UserError("set TOUCHWAVE_TOKEN to your API token (touchwave token create --role ... --user you)")
        self.url = url
        self.client = httpx.Client(base_url=url, transport=transport, timeout=timeout,
                                   headers={"Authorization": f"Bearer {token}"})

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            answer = self.client.request(method, f"/v1{path}", json=body)
        except httpx.TransportError as exc:
            raise UserError(f"the API at {self.url} does not answer ({exc.__class__.__name__}); "
                            "is `touchwave api` or `touchwave dev` running? (TOUCHWAVE_API_URL)") from None
        if answer.is_success:
            return answer.json()
        raise UserError(f"the API refused ({answer.status_code}): {_reason(answer)}")

    def step(self, campaign_id: int, action: str, comment: str | None = None) -> dict[str, Any]:
        return self.call("POST", f"/campaigns/{campaign_id}/{action}", {"comment": comment})


def _reason(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail")
    except ValueError:
        return answer.text[:200] or answer.reason_phrase
    if isinstance(detail, list):  # 422: where and what
        return "; ".join(f"{d.get('path') or '.'.join(d.get('loc', []))}: {d.get('message') or d.get('msg')}"
                         for d in detail)
    return str(detail)
