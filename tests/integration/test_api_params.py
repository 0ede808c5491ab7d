"""The API's query-parameter parsers: pure functions, 422 problems on bad input."""

from __future__ import annotations

import pytest

from hookd.api import params
from hookd.domain import errors
from hookd.domain.models import DeliveryStatus


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * 86400),
        ("12h", 12 * 3600),
        ("90m", 5400),
        ("45s", 45),
        ("2w", 14 * 86400),
        ("1h30m", 5400),
        ("3600", 3600),
        ("2.5", 2.5),
        ("0", 0),
        (" 12H ", 12 * 3600),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert params.parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", " ", "abc", "-5", "10x", "1.5d", "d", "5 days", "1e9", "30m1h2", "inf", "nan"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        params.parse_duration(text)
    (problem,) = caught.value.problems
    assert problem.path == "older_than"
    assert "e.g. 30d" in problem.message


def test_parse_statuses() -> None:
    assert params.parse_statuses([]) == ()
    assert params.parse_statuses(["pending, dead", "pending", ""]) == (
        DeliveryStatus.PENDING,
        DeliveryStatus.DEAD,
    )


def test_parse_statuses_names_every_unknown_one() -> None:
    with pytest.raises(errors.ValidationError) as caught:
        params.parse_statuses(["lost,pending", "PENDING"])
    assert [p.message.split(";")[0] for p in caught.value.problems] == [
        "unknown status 'lost'",
        "unknown status 'PENDING'",
    ]
    assert {p.path for p in caught.value.problems} == {"status"}
