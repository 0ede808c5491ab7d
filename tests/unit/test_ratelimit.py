"""Token buckets and the rate-limit format, on an injected clock (no I/O, no sleeping)."""

from __future__ import annotations

import pytest

from hookd.config import RateLimit, Settings, parse_rate_limit
from hookd.domain import errors
from hookd.policy.ratelimit import TokenBuckets, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_refill_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(RateLimit(per_second=2.0, burst=3), clock=clock)
    first = [buckets.take("k") for _ in range(4)]
    assert [v.allowed for v in first] == [True, True, True, False]
    assert [v.remaining for v in first] == [2, 1, 0, 0]
    refused = first[-1]
    assert refused.limit == 3
    assert refused.retry_after == pytest.approx(0.5)  # one token at 2/s
    assert refused.reset == pytest.approx(1.5)  # three tokens at 2/s
    clock.now += 0.25
    assert not buckets.take("k").allowed  # half a token is not a token
    clock.now += 0.25
    allowed = buckets.take("k")
    assert allowed.allowed and allowed.remaining == 0 and allowed.retry_after == 0
    clock.now += 100  # refills up to the burst, not beyond
    assert [buckets.take("k").allowed for _ in range(4)] == [True, True, True, False]


def test_a_refused_request_takes_nothing() -> None:
    clock = Clock()
    buckets = TokenBuckets(RateLimit(per_second=1.0, burst=1), clock=clock)
    assert buckets.take("k").allowed
    for _ in range(10):
        assert not buckets.take("k").allowed
    clock.now += 1.0
    assert buckets.take("k").allowed  # hammering did not push the next token further away


def test_keys_are_independent() -> None:
    buckets = TokenBuckets(RateLimit(per_second=1.0, burst=1), clock=Clock())
    assert buckets.take("a").allowed
    assert not buckets.take("a").allowed
    assert buckets.take("b").allowed


def test_memory_is_bounded_and_the_least_recently_used_is_forgotten() -> None:
    clock = Clock()
    buckets = TokenBuckets(RateLimit(per_second=0.001, burst=1), max_keys=3, clock=clock)
    for key in ("a", "b", "c"):
        assert buckets.take(key).allowed
    assert not buckets.take("a").allowed  # "a" is now the most recently used
    assert buckets.take("d").allowed  # "b" is forgotten
    assert len(buckets) == 3
    assert not buckets.take("a").allowed  # still remembered
    assert buckets.take("b").allowed  # forgotten: as good as a full bucket
    for i in range(1000):
        buckets.take(i)
    assert len(buckets) == 3


def test_verdict_headers() -> None:
    allowed = Verdict(allowed=True, limit=10, remaining=7, reset=1.2, retry_after=0.0)
    assert allowed.headers() == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "7",
        "X-RateLimit-Reset": "2",
    }
    refused = Verdict(allowed=False, limit=10, remaining=0, reset=9.5, retry_after=0.01)
    assert refused.headers()["Retry-After"] == "1"  # never 0: that would invite a busy loop
    assert refused.headers()["X-RateLimit-Reset"] == "10"


@pytest.mark.parametrize(
    ("text", "per_second", "burst"),
    [
        ("100/s:200", 100.0, 200),
        ("5/m", 5 / 60, 5),
        ("1000/h:50", 1000 / 3600, 50),
        (" 2.5/S ", 2.5, 3),
    ],
)
def test_parse_rate_limit(text: str, per_second: float, burst: int) -> None:
    limit = parse_rate_limit(text)
    assert limit is not None
    assert limit.per_second == pytest.approx(per_second)
    assert limit.burst == burst


@pytest.mark.parametrize("text", ["off", "OFF", "0", "none"])
def test_parse_rate_limit_off(text: str) -> None:
    assert parse_rate_limit(text) is None


@pytest.mark.parametrize(
    "text", ["100", "100/d", "x/s", "10/s:x", "-1/s", "0/s", "10/s:0", "nan/s", "inf/s", "/s"]
)
def test_parse_rate_limit_refuses_junk(text: str) -> None:
    with pytest.raises(errors.ConfigError, match="HOOKD_RATE_LIMIT_PER_KEY"):
        parse_rate_limit(text, name="HOOKD_RATE_LIMIT_PER_KEY")


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {
            "HOOKD_RATE_LIMIT_PER_KEY": "10/s:20",
            "HOOKD_RATE_LIMIT_PER_IP": "off",
            "HOOKD_RATE_LIMIT_TEST_SEND": "2/m",
            "HOOKD_RATE_LIMIT_MAX_TRACKED": "50",
            "HOOKD_METRICS_PUBLIC": "true",
            "HOOKD_METRICS_ENDPOINT_CAP": "7",
        }
    )
    assert settings.rate_limit_per_key == RateLimit(10.0, 20)
    assert settings.rate_limit_per_ip is None
    assert settings.rate_limit_test_send == RateLimit(2 / 60, 2)
    assert settings.rate_limit_max_tracked == 50
    assert settings.metrics_public is True
    assert settings.metrics_endpoint_cap == 7
    defaults = Settings.from_env({})
    assert defaults.rate_limit_test_send == RateLimit(5 / 60, 5)
    assert defaults.metrics_public is False
    with pytest.raises(errors.ConfigError, match="HOOKD_METRICS_PUBLIC"):
        Settings.from_env({"HOOKD_METRICS_PUBLIC": "maybe"})
    with pytest.raises(errors.ConfigError, match="HOOKD_RATE_LIMIT_MAX_TRACKED"):
        Settings.from_env({"HOOKD_RATE_LIMIT_MAX_TRACKED": "0"})


# the per-endpoint delivery limits' arithmetic (hookd.policy.ratelimit; the stores run it in SQL)
def test_grant_takes_whole_tokens_up_to_what_is_wanted() -> None:
    from hookd.policy import ratelimit

    full = ratelimit.grant(5.0, 100.0, 100.0, rate=10.0, burst=5, wanted=3)
    assert full == ratelimit.Grant(granted=3, tokens=2.0)
    short = ratelimit.grant(2.0, 100.0, 100.0, rate=10.0, burst=5, wanted=4)
    assert short == ratelimit.Grant(granted=2, tokens=0.0)
    # 0.15 s at 10/s: 1.5 tokens back; one whole one granted, the half stays
    later = ratelimit.grant(0.0, 100.0, 100.15, rate=10.0, burst=5, wanted=4)
    assert later.granted == 1 and later.tokens == pytest.approx(0.5)
    # never more than the burst; a clock that went backwards refills nothing
    assert ratelimit.grant(0.0, 100.0, 1e6, rate=10.0, burst=5, wanted=99).granted == 5
    assert ratelimit.grant(1.0, 100.0, 99.0, rate=10.0, burst=5, wanted=9).granted == 1


def test_wait_for_a_token_and_a_later_place_in_line() -> None:
    from hookd.policy import ratelimit

    assert ratelimit.wait_for(0.5, rate=10.0) == pytest.approx(0.05)
    assert ratelimit.wait_for(0.5, rate=10.0, needed=3) == pytest.approx(0.25)
    assert ratelimit.wait_for(2.0, rate=10.0) == 0.0


def test_backoff_after_429_or_503_honours_retry_after_within_bounds() -> None:
    from hookd.policy import ratelimit

    now = 1000.0
    assert ratelimit.backoff_until(200, "5", now) is None
    assert ratelimit.backoff_until(500, "5", now) is None
    assert ratelimit.backoff_until(429, "2", now) == pytest.approx(1002.0)
    assert ratelimit.backoff_until(503, None, now) == pytest.approx(now + ratelimit.DEFAULT_BACKOFF)
    assert ratelimit.backoff_until(429, "99999", now, limit=60.0) == pytest.approx(1060.0)
    assert ratelimit.backoff_until(429, "soon", now) == pytest.approx(now + 1.0)
