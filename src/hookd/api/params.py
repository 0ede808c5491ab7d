"""Parsers for query parameters with a syntax of their own. Pure: text in, value or
`ValidationError` (a 422 problem) out."""

from __future__ import annotations

import re
from collections.abc import Iterable

from hookd.domain import errors
from hookd.domain.errors import Problem
from hookd.domain.models import DeliveryStatus

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")
_WITH_UNITS = re.compile(r"(?:[0-9]{1,9}[wdhms])+")
_PART = re.compile(r"([0-9]+)([wdhms])")


def parse_duration(text: str, *, path: str = "older_than") -> float:
    """Seconds in `30d`, `12h`, `90m`, `45s`, `1h30m` or plain seconds (`3600`, `2.5`)."""
    value = text.strip().lower()
    if _SECONDS.fullmatch(value):
        return float(value)
    if _WITH_UNITS.fullmatch(value):
        return float(sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(value)))
    raise errors.ValidationError(
        "invalid duration",
        [
            Problem(
                path,
                f"{text!r} is not a duration: use a number of seconds or a count with a unit "
                "(w, d, h, m, s), e.g. 30d, 12h, 90m, 45s",
            )
        ],
    )


def parse_statuses(values: Iterable[str], *, path: str = "status") -> tuple[DeliveryStatus, ...]:
    """Delivery statuses from repeated and/or comma-separated values (`pending,dead`)."""
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    known = {s.value for s in DeliveryStatus}
    unknown = [name for name in names if name not in known]
    if unknown:
        choices = ", ".join(s.value for s in DeliveryStatus)
        raise errors.ValidationError(
            "invalid filter",
            [Problem(path, f"unknown status {name!r}; one of {choices}") for name in unknown],
        )
    return tuple(dict.fromkeys(DeliveryStatus(name) for name in names))
