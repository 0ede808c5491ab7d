"""Event-type names and the subscription patterns endpoints use to pick events.

An event type is dotted segments of letters, digits, ``_`` and ``-`` (``order.filled``).
A pattern is ``*`` (every type), an exact type, or ``<type>.*`` (every type below it:
``order.*`` matches ``order.filled`` and ``order.filled.partial``, not ``order``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hookd.domain import errors

MAX_NAME_LENGTH = 128
MATCH_ALL = "*"
_WILDCARD_SUFFIX = ".*"
_EVENT_TYPE = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


def validate_event_type(name: str) -> str:
    """Return `name` if it is a valid event type; raise `errors.InvalidPattern` if not."""
    problem = _event_type_problem(name)
    if problem:
        raise _invalid("event_type", f"event type {_shown(name)} {problem}")
    return name


def validate_pattern(pattern: str) -> str:
    """Return `pattern` if it is ``*``, an event type or ``<event type>.*``; else raise
    `errors.InvalidPattern`."""
    if pattern == MATCH_ALL:
        return pattern
    name = pattern.removesuffix(_WILDCARD_SUFFIX)
    problem = _event_type_problem(name)
    if problem:
        if "*" in name:
            problem = "may use '*' only alone or as a last '.*' segment"
        raise _invalid("pattern", f"pattern {_shown(pattern)} {problem}")
    return pattern


def matches(pattern: str, event_type: str) -> bool:
    """Whether `pattern` selects `event_type`. Both are assumed valid (see the validators)."""
    if pattern == MATCH_ALL:
        return True
    if pattern.endswith(_WILDCARD_SUFFIX):
        return event_type.startswith(pattern[:-1])  # the prefix, keeping its trailing dot
    return pattern == event_type


class PatternSet:
    """One endpoint's patterns, compiled to match many event types quickly.

    Matching costs one set lookup per segment of the event type, however many patterns
    there are. An empty set matches nothing.
    """

    __slots__ = ("_exact", "_match_all", "_prefixes", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        """Validate and compile `patterns` (duplicates are dropped, order is kept)."""
        self.patterns: tuple[str, ...] = tuple(dict.fromkeys(validate_pattern(p) for p in patterns))
        self._match_all = MATCH_ALL in self.patterns
        self._exact = frozenset(p for p in self.patterns if not p.endswith("*"))
        self._prefixes = frozenset(
            p.removesuffix(_WILDCARD_SUFFIX) for p in self.patterns if p.endswith(_WILDCARD_SUFFIX)
        )

    def matches(self, event_type: str) -> bool:
        """Whether any of the patterns selects `event_type`."""
        if self._match_all or event_type in self._exact:
            return True
        dot = event_type.find(".")
        while dot != -1:
            if event_type[:dot] in self._prefixes:
                return True
            dot = event_type.find(".", dot + 1)
        return False

    def __repr__(self) -> str:
        return f"PatternSet({list(self.patterns)!r})"


def _event_type_problem(name: str) -> str:
    """Why `name` is not a valid event type, or ``""`` when it is."""
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        return f"must be 1 to {MAX_NAME_LENGTH} characters long"
    if not _EVENT_TYPE.fullmatch(name):
        return "must be dot-separated segments of letters, digits, '_' or '-'"
    return ""


def _shown(text: str) -> str:
    """`text` quoted for an error message, shortened when long."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _invalid(path: str, message: str) -> errors.InvalidPattern:
    return errors.InvalidPattern(message, [errors.Problem(path, message)])
