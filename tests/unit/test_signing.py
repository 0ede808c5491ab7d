"""Standard Webhooks signing: published vectors, reference-verifier interop, failure reasons."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import standardwebhooks.webhooks
import svix.webhooks

from hookd.domain import errors
from hookd.policy import signing

# Published test vectors (Svix / Standard Webhooks libraries).
VECTORS = [
    (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ),
    (
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        1649367553,
        b'{"email":"test@example.com","username":"test_user"}',
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    ),
]

SECRET, MSG_ID, TIMESTAMP, BODY, SIGNATURE = VECTORS[0]
OTHER_SECRET = VECTORS[1][0]


def headers(msg_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def signed(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return headers(
        msg_id, timestamp, signing.sign(signing.decode_secret(secret), msg_id, timestamp, body)
    )


Tamper = Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]


def reason(exc_info: pytest.ExceptionInfo[errors.VerificationError]) -> str:
    return str(exc_info.value)


# -- published vectors ----------------------------------------------------------------------------


@pytest.mark.parametrize(("secret", "msg_id", "timestamp", "body", "expected"), VECTORS)
def test_sign_matches_published_vector(
    secret: str, msg_id: str, timestamp: int, body: bytes, expected: str
) -> None:
    assert signing.sign(signing.decode_secret(secret), msg_id, timestamp, body) == expected


@pytest.mark.parametrize(("secret", "msg_id", "timestamp", "body", "expected"), VECTORS)
def test_verify_accepts_published_vector(
    secret: str, msg_id: str, timestamp: int, body: bytes, expected: str
) -> None:
    signing.verify(secret, headers(msg_id, timestamp, expected), body, now=timestamp)


# -- secrets --------------------------------------------------------------------------------------


def test_decode_secret_with_and_without_prefix() -> None:
    key = signing.decode_secret(SECRET)
    assert len(key) == 24
    assert signing.decode_secret(SECRET.removeprefix("whsec_")) == key


def test_decode_secret_tolerates_missing_padding() -> None:
    key = bytes(range(25))  # 25 bytes encode with one "=" of padding
    encoded = base64.b64encode(key).decode()
    assert encoded.endswith("=")
    assert signing.decode_secret("whsec_" + encoded.rstrip("=")) == key


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "empty"),
        ("whsec_", "empty"),
        ("whsec_not base64!", "not valid base64"),
        ("whsec_abcde", "not valid base64"),  # a length no base64 text can have
        ("whsec_ÄÖÜÄ", "not valid base64"),
        ("whsec_c2VjcmV0-_", "not valid base64"),  # URL-safe alphabet is not standard base64
    ],
)
def test_decode_secret_rejects_malformed_without_echoing_it(secret: str, message: str) -> None:
    with pytest.raises(errors.InvalidSecret) as exc_info:
        signing.decode_secret(secret)
    assert message in str(exc_info.value)
    assert exc_info.value.problems[0].path == "secret"
    encoded = secret.removeprefix("whsec_")
    if encoded:
        assert encoded not in str(exc_info.value)
        assert exc_info.value.__cause__ is None
        assert exc_info.value.__suppress_context__


@pytest.mark.parametrize("nbytes", [24, 32, 64])
def test_generate_secret_round_trips(nbytes: int) -> None:
    secret = signing.generate_secret(nbytes)
    assert secret.startswith("whsec_")
    assert len(signing.decode_secret(secret)) == nbytes
    assert signing.validate_new_secret(secret) == secret


def test_generate_secret_is_random() -> None:
    assert signing.generate_secret() != signing.generate_secret()
    assert len(signing.decode_secret(signing.generate_secret())) == 32


@pytest.mark.parametrize("nbytes", [0, 23, 65])
def test_generate_secret_rejects_sizes(nbytes: int) -> None:
    with pytest.raises(ValueError, match=re.escape("24..64")):
        signing.generate_secret(nbytes)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (SECRET.removeprefix("whsec_"), "must start with 'whsec_'"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "24..64 bytes, not 23"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24..64 bytes, not 65"),
        ("whsec_%%%%", "not valid base64"),
    ],
)
def test_validate_new_secret_rejects(secret: str, message: str) -> None:
    with pytest.raises(errors.InvalidSecret, match=re.escape(message)):
        signing.validate_new_secret(secret)


def test_validate_new_secret_accepts_size_bounds() -> None:
    for size in (24, 64):
        secret = "whsec_" + base64.b64encode(b"k" * size).decode()
        assert signing.validate_new_secret(secret) == secret


def test_secret_preview() -> None:
    assert signing.secret_preview(SECRET) == "whsec_MfKQ…aSw"
    assert signing.secret_preview("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == "MfKQ…aSw"


def test_secret_preview_of_short_secret_reveals_nothing() -> None:
    assert signing.secret_preview("whsec_c2VjcmV0") == "whsec_…"


# -- signature header -----------------------------------------------------------------------------


def test_signature_header_has_one_signature_per_key_in_order() -> None:
    keys = [signing.decode_secret(SECRET), signing.decode_secret(OTHER_SECRET)]
    header = signing.signature_header(keys, MSG_ID, TIMESTAMP, BODY)
    assert header.split(" ") == [signing.sign(k, MSG_ID, TIMESTAMP, BODY) for k in keys]
    assert header.split(" ")[0] == SIGNATURE


def test_signature_header_needs_a_key() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        signing.signature_header([], MSG_ID, TIMESTAMP, BODY)


# -- verify: acceptance ---------------------------------------------------------------------------


def test_verify_header_names_are_case_insensitive() -> None:
    hdrs = {k.upper(): v for k, v in headers(MSG_ID, TIMESTAMP, SIGNATURE).items()}
    signing.verify(SECRET, hdrs, BODY, now=TIMESTAMP)


def test_verify_accepts_svix_header_aliases() -> None:
    hdrs = {"Svix-Id": MSG_ID, "Svix-Timestamp": str(TIMESTAMP), "Svix-Signature": SIGNATURE}
    signing.verify(SECRET, hdrs, BODY, now=TIMESTAMP)


def test_verify_accepts_raw_key_bytes() -> None:
    signing.verify(
        signing.decode_secret(SECRET), headers(MSG_ID, TIMESTAMP, SIGNATURE), BODY, now=TIMESTAMP
    )


def test_rotation_header_verifies_against_either_secret() -> None:
    keys = [signing.decode_secret(OTHER_SECRET), signing.decode_secret(SECRET)]
    hdrs = headers(MSG_ID, TIMESTAMP, signing.signature_header(keys, MSG_ID, TIMESTAMP, BODY))
    signing.verify(SECRET, hdrs, BODY, now=TIMESTAMP)
    signing.verify(OTHER_SECRET, hdrs, BODY, now=TIMESTAMP)
    with pytest.raises(errors.VerificationError, match="no matching signature"):
        signing.verify(signing.generate_secret(), hdrs, BODY, now=TIMESTAMP)


def test_verify_accepts_any_of_several_secrets() -> None:
    hdrs = headers(MSG_ID, TIMESTAMP, SIGNATURE)
    signing.verify([OTHER_SECRET, SECRET], hdrs, BODY, now=TIMESTAMP)
    signing.verify((b"another raw key", SECRET), hdrs, BODY, now=TIMESTAMP)


def test_verify_skips_other_versions_and_junk_entries() -> None:
    sig = SIGNATURE.removeprefix("v1,")
    header = f"v1a,{sig} v2,{sig} v1,%%%notbase64 v1, nocomma   {SIGNATURE}"
    signing.verify(SECRET, headers(MSG_ID, TIMESTAMP, header), BODY, now=TIMESTAMP)


def test_verify_accepts_timestamps_at_the_tolerance_edges() -> None:
    hdrs = headers(MSG_ID, TIMESTAMP, SIGNATURE)
    signing.verify(SECRET, hdrs, BODY, now=TIMESTAMP + 300)
    signing.verify(SECRET, hdrs, BODY, now=TIMESTAMP - 300)
    signing.verify(SECRET, hdrs, BODY, now=TIMESTAMP + 10, tolerance=10)


def test_verify_uses_the_clock_by_default() -> None:
    now = int(time.time())
    signing.verify(SECRET, signed(SECRET, MSG_ID, now, BODY), BODY)
    with pytest.raises(errors.VerificationError, match="too old"):
        signing.verify(SECRET, headers(MSG_ID, TIMESTAMP, SIGNATURE), BODY)


# -- verify: failures and their reasons -----------------------------------------------------------


@pytest.mark.parametrize(
    ("drop", "missing"),
    [
        (("webhook-id",), "webhook-id"),
        (("webhook-timestamp",), "webhook-timestamp"),
        (("webhook-signature",), "webhook-signature"),
        (("webhook-id", "webhook-signature"), "webhook-id, webhook-signature"),
    ],
)
def test_verify_names_missing_headers(drop: tuple[str, ...], missing: str) -> None:
    hdrs = {k: v for k, v in headers(MSG_ID, TIMESTAMP, SIGNATURE).items() if k not in drop}
    with pytest.raises(errors.VerificationError) as exc_info:
        signing.verify(SECRET, hdrs, BODY, now=TIMESTAMP)
    assert reason(exc_info) == f"missing header(s): {missing}"


def test_verify_treats_empty_header_as_missing() -> None:
    hdrs = {**headers(MSG_ID, TIMESTAMP, SIGNATURE), "webhook-id": "  "}
    with pytest.raises(errors.VerificationError, match="missing header"):
        signing.verify(SECRET, hdrs, BODY, now=TIMESTAMP)


@pytest.mark.parametrize(
    "raw", ["1614265330.5", "abc", "-1614265330", "1e9", "١٦١٤٢٦٥٣٣٠", "9" * 21]
)
def test_verify_rejects_non_integer_timestamp(raw: str) -> None:
    hdrs = {**headers(MSG_ID, TIMESTAMP, SIGNATURE), "webhook-timestamp": raw}
    with pytest.raises(errors.VerificationError, match="not an integer"):
        signing.verify(SECRET, hdrs, BODY, now=TIMESTAMP)


def test_verify_rejects_old_timestamp() -> None:
    with pytest.raises(errors.VerificationError) as exc_info:
        signing.verify(SECRET, headers(MSG_ID, TIMESTAMP, SIGNATURE), BODY, now=TIMESTAMP + 301)
    assert reason(exc_info) == "timestamp too old: 301s ago, tolerance is 300s"


def test_verify_rejects_future_timestamp() -> None:
    with pytest.raises(errors.VerificationError) as exc_info:
        signing.verify(SECRET, headers(MSG_ID, TIMESTAMP, SIGNATURE), BODY, now=TIMESTAMP - 301)
    assert reason(exc_info) == "timestamp too far in the future: 301s ahead, tolerance is 300s"


def test_verify_checks_timestamp_before_signature() -> None:
    """A stale replay is reported as stale even though its signature is genuine."""
    with pytest.raises(errors.VerificationError, match="too old"):
        signing.verify(SECRET, headers(MSG_ID, TIMESTAMP, SIGNATURE), BODY, now=TIMESTAMP + 3600)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: ({**h, "webhook-id": "msg_other"}, b),
        lambda h, b: (h, b + b" "),
        lambda h, b: (h, b.replace(b"2432232314", b"2432232315")),
    ],
    ids=["id", "body-appended", "body-changed"],
)
def test_verify_rejects_tampering(tamper: Tamper) -> None:
    hdrs, body = tamper(headers(MSG_ID, TIMESTAMP, SIGNATURE), BODY)
    with pytest.raises(errors.VerificationError, match="no matching signature"):
        signing.verify(SECRET, hdrs, body, now=TIMESTAMP)


def test_verify_rejects_timestamp_tampering() -> None:
    hdrs = headers(MSG_ID, TIMESTAMP + 1, SIGNATURE)
    with pytest.raises(errors.VerificationError, match="no matching signature"):
        signing.verify(SECRET, hdrs, BODY, now=TIMESTAMP)


def test_verify_rejects_wrong_secret() -> None:
    with pytest.raises(errors.VerificationError, match="no matching signature"):
        signing.verify(OTHER_SECRET, headers(MSG_ID, TIMESTAMP, SIGNATURE), BODY, now=TIMESTAMP)


@pytest.mark.parametrize(
    "header",
    [
        SIGNATURE.replace("v1,", "v1a,") + " " + SIGNATURE.replace("v1,", "v2,"),
        SIGNATURE.removeprefix("v1,"),
        "garbage",
        "v1,%%%",
    ],
)
def test_verify_reports_absent_v1_signature(header: str) -> None:
    with pytest.raises(errors.VerificationError, match="no v1 signature"):
        signing.verify(SECRET, headers(MSG_ID, TIMESTAMP, header), BODY, now=TIMESTAMP)


@pytest.mark.parametrize("secrets", [[], b"", [SECRET, b""]])
def test_verify_needs_usable_secrets(secrets: list[str | bytes] | bytes) -> None:
    with pytest.raises(errors.InvalidSecret):
        signing.verify(secrets, headers(MSG_ID, TIMESTAMP, SIGNATURE), BODY, now=TIMESTAMP)


def test_verify_reports_malformed_secret_as_invalid_secret() -> None:
    with pytest.raises(errors.InvalidSecret, match="not valid base64"):
        signing.verify("whsec_%%%%", headers(MSG_ID, TIMESTAMP, SIGNATURE), BODY, now=TIMESTAMP)


# -- interop with the reference verifiers ---------------------------------------------------------

INTEROP_BODY = b'{"type":"order.filled","timestamp":"2024-05-01T12:00:00Z","data":{"qty":3}}'


def test_reference_verifiers_accept_our_signatures() -> None:
    secret = signing.generate_secret()
    now = int(time.time())
    hdrs = signed(secret, "msg_interop", now, INTEROP_BODY)
    assert standardwebhooks.webhooks.Webhook(secret).verify(INTEROP_BODY, hdrs) == {
        "type": "order.filled",
        "timestamp": "2024-05-01T12:00:00Z",
        "data": {"qty": 3},
    }
    svix.webhooks.Webhook(secret).verify(INTEROP_BODY, hdrs)
    svix_hdrs = {f"svix-{k.removeprefix('webhook-')}": v for k, v in hdrs.items()}
    svix.webhooks.Webhook(secret).verify(INTEROP_BODY, svix_hdrs)


def test_reference_verifiers_accept_our_rotation_header() -> None:
    old, new = signing.generate_secret(), signing.generate_secret()
    now = int(time.time())
    keys = [signing.decode_secret(new), signing.decode_secret(old)]
    hdrs = headers("msg_rot", now, signing.signature_header(keys, "msg_rot", now, INTEROP_BODY))
    for secret in (old, new):
        standardwebhooks.webhooks.Webhook(secret).verify(INTEROP_BODY, hdrs)
        svix.webhooks.Webhook(secret).verify(INTEROP_BODY, hdrs)


def test_reference_verifiers_reject_our_signature_under_another_secret() -> None:
    """Guards the interop tests above against a verifier that accepts anything."""
    now = int(time.time())
    hdrs = signed(signing.generate_secret(), "msg_interop", now, INTEROP_BODY)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.webhooks.Webhook(signing.generate_secret()).verify(INTEROP_BODY, hdrs)
    with pytest.raises(svix.webhooks.WebhookVerificationError):
        svix.webhooks.Webhook(signing.generate_secret()).verify(INTEROP_BODY, hdrs)


@pytest.mark.parametrize(
    "reference",
    [standardwebhooks.webhooks.Webhook, svix.webhooks.Webhook],
    ids=["standardwebhooks", "svix"],
)
def test_we_accept_reference_signatures(reference: type) -> None:
    secret = signing.generate_secret()
    timestamp = 1714564800
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    signature = reference(secret).sign("msg_ref", when, INTEROP_BODY.decode())
    hdrs = headers("msg_ref", timestamp, signature)
    signing.verify(secret, hdrs, INTEROP_BODY, now=timestamp)
    with pytest.raises(errors.VerificationError, match="no matching signature"):
        signing.verify(signing.generate_secret(), hdrs, INTEROP_BODY, now=timestamp)
