"""Signing-secret rotation, as a pure function of an endpoint's secrets and the clock.

Rotating adds the new secret and gives every secret still valid an end (`expires_at`) at most
`grace` seconds away; until then deliveries carry one signature per valid secret
(`Endpoint.signing_keys_at`), so receivers can switch secrets at their own pace. Expired secrets
are dropped whenever the secrets are rewritten (`prune`).
"""

from __future__ import annotations

from collections.abc import Sequence

from hookd.domain import errors
from hookd.domain.errors import Problem
from hookd.domain.models import EndpointSecret, Secret

DEFAULT_GRACE = 86400.0  # 24 h
MAX_GRACE = 7 * 86400.0
#: Secrets valid at once (the new one included): a bound on signatures per request.
MAX_LIVE_SECRETS = 5


def prune(secrets: Sequence[EndpointSecret], now: float) -> tuple[EndpointSecret, ...]:
    """The secrets still valid at `now`."""
    return tuple(s for s in secrets if s.valid_at(now))


def rotate(
    secrets: Sequence[EndpointSecret], new: str, *, now: float, grace: float
) -> tuple[EndpointSecret, ...]:
    """`new` first, then the secrets valid now, each expiring within `grace` seconds.

    A secret already due to expire sooner keeps its earlier end; `grace` 0 retires the old
    secrets at once. Raises `ValidationError` for a grace outside 0..`MAX_GRACE` or a `new`
    secret equal to a valid one, and `Conflict` when more than `MAX_LIVE_SECRETS` would be valid.
    """
    if not 0 <= grace <= MAX_GRACE:
        raise errors.ValidationError(
            "invalid rotation",
            [Problem("grace_period", f"must be 0..{MAX_GRACE:.0f} seconds (7 days)")],
        )
    live = prune(secrets, now)
    if any(s.value.reveal() == new for s in live):
        raise errors.ValidationError(
            "invalid rotation", [Problem("secret", "must differ from the endpoint's secrets")]
        )
    ends = now + grace
    kept = (
        ()
        if grace == 0
        else tuple(
            EndpointSecret(
                s.value, s.created_at, ends if s.expires_at is None else min(s.expires_at, ends)
            )
            for s in live
        )
    )
    if len(kept) + 1 > MAX_LIVE_SECRETS:
        raise errors.Conflict(
            f"{len(kept)} secrets are still in their grace period; at most "
            f"{MAX_LIVE_SECRETS} may be valid at once. Wait for one to expire, or rotate "
            "with grace_period 0"
        )
    return (EndpointSecret(Secret(new), now), *kept)
