"""The receiver library: `hookd.receiver.Webhook` and the re-exported `verify`."""

from __future__ import annotations

import time

import orjson
import pytest

from hookd import receiver
from hookd.domain import errors
from hookd.policy import signing

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
PAYLOAD = {"type": "order.filled", "timestamp": "2024-05-01T12:00:00Z", "data": {"qty": 3}}


def request(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """Headers of a request signed now (or at `timestamp`) with `secret`."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(ts),
        "Webhook-Signature": signing.sign(signing.decode_secret(secret), "msg_1", ts, body),
    }


def test_exports() -> None:
    assert receiver.verify is signing.verify
    assert receiver.VerificationError is errors.VerificationError
    assert sorted(receiver.__all__) == ["VerificationError", "Webhook", "verify"]


def test_verify_returns_the_parsed_body() -> None:
    body = orjson.dumps(PAYLOAD)
    assert receiver.Webhook(SECRET).verify(body, request(SECRET, body)) == PAYLOAD


def test_verify_accepts_any_of_several_secrets() -> None:
    body = orjson.dumps(PAYLOAD)
    webhook = receiver.Webhook([OTHER_SECRET, SECRET])
    assert webhook.verify(body, request(SECRET, body)) == PAYLOAD
    assert webhook.verify(body, request(OTHER_SECRET, body)) == PAYLOAD


def test_verify_rejects_a_bad_signature() -> None:
    body = orjson.dumps(PAYLOAD)
    with pytest.raises(receiver.VerificationError, match="no matching signature"):
        receiver.Webhook(SECRET).verify(body, request(OTHER_SECRET, body))


def test_verify_applies_the_tolerance() -> None:
    body = orjson.dumps(PAYLOAD)
    headers = request(SECRET, body, timestamp=int(time.time()) - 120)
    assert receiver.Webhook(SECRET).verify(body, headers) == PAYLOAD
    with pytest.raises(receiver.VerificationError, match="too old"):
        receiver.Webhook(SECRET, tolerance=60).verify(body, headers)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"x"', "not a JSON object"),
    ],
)
def test_verify_rejects_a_signed_body_that_is_not_a_json_object(body: bytes, message: str) -> None:
    with pytest.raises(receiver.VerificationError, match=message):
        receiver.Webhook(SECRET).verify(body, request(SECRET, body))


def test_malformed_secret_fails_at_construction() -> None:
    with pytest.raises(errors.InvalidSecret, match="not valid base64"):
        receiver.Webhook("whsec_%%%%")


def test_no_secret_fails_at_construction() -> None:
    with pytest.raises(errors.InvalidSecret, match="at least one secret"):
        receiver.Webhook([])


def test_repr_hides_the_secrets() -> None:
    shown = repr(receiver.Webhook([SECRET, OTHER_SECRET], tolerance=30))
    assert shown == "Webhook(<2 secret(s)>, tolerance=30)"
