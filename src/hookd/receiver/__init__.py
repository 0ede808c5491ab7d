"""Tools for receivers of webhooks: verify that a request really came from its sender.

Verification follows Standard Webhooks, so it works for hookd, Svix and any other compliant
sender. With a framework, verify the raw body bytes before trusting anything in them::

    from fastapi import FastAPI, HTTPException, Request
    from hookd.receiver import VerificationError, Webhook

    app = FastAPI()
    webhook = Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")

    @app.post("/webhooks")
    async def receive(request: Request) -> None:
        try:
            event = webhook.verify(await request.body(), request.headers)
        except VerificationError as exc:
            raise HTTPException(status_code=401, detail=str(exc)) from exc
        if event["type"] == "order.filled":
            ...

During a secret rotation pass both secrets, ``Webhook([new, old])``; a request signed with
either is accepted. `verify` is the same check as a plain function, for raw keys or when the
body is not JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from hookd.domain import errors
from hookd.domain.errors import VerificationError
from hookd.policy import signing
from hookd.policy.signing import verify

__all__ = ["VerificationError", "Webhook", "verify"]


class Webhook:
    """Verifies incoming webhooks against one or more ``whsec_`` secrets."""

    __slots__ = ("_keys", "tolerance")

    def __init__(
        self, secret: str | Sequence[str], *, tolerance: int = signing.DEFAULT_TOLERANCE
    ) -> None:
        """Decode the secret(s) now, so a malformed one fails here with
        `errors.InvalidSecret` rather than on the first request.

        `tolerance` is how far, in seconds, a request's timestamp may be from the clock.
        """
        given = [secret] if isinstance(secret, str) else list(secret)
        if not given:
            message = "at least one secret is required"
            raise errors.InvalidSecret(message, [errors.Problem("secret", message)])
        self._keys = tuple(signing.decode_secret(s) for s in given)
        self.tolerance = tolerance

    def verify(self, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        """Verify a request and return its JSON body.

        Raises `VerificationError` when the signature or timestamp is not valid, or when the
        verified body is not a JSON object (Standard Webhooks payloads always are).
        """
        signing.verify(self._keys, headers, body, tolerance=self.tolerance)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise VerificationError("the body is not valid JSON") from None
        if not isinstance(payload, dict):
            raise VerificationError("the body is not a JSON object")
        return payload

    def __repr__(self) -> str:
        return f"Webhook(<{len(self._keys)} secret(s)>, tolerance={self.tolerance})"
