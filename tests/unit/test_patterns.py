"""Event-type names and subscription patterns."""

from __future__ import annotations

import pytest

from hookd.domain import errors
from hookd.policy import patterns


@pytest.mark.parametrize(
    "name",
    ["order", "order.filled", "pool.assets_locked", "a-b.c_d.E9", "x" * 128, "a." * 63 + "bc"],
)
def test_valid_event_types(name: str) -> None:
    assert patterns.validate_event_type(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must be 1 to 128 characters long"),
        ("x" * 129, "must be 1 to 128 characters long"),
        ("order.", "dot-separated segments"),
        (".order", "dot-separated segments"),
        ("order..filled", "dot-separated segments"),
        ("order filled", "dot-separated segments"),
        ("order.*", "dot-separated segments"),
        ("*", "dot-separated segments"),
        ("ordér", "dot-separated segments"),
        ("order\n", "dot-separated segments"),
        ("order/filled", "dot-separated segments"),
    ],
)
def test_invalid_event_types(name: str, message: str) -> None:
    with pytest.raises(errors.InvalidPattern) as exc_info:
        patterns.validate_event_type(name)
    assert message in str(exc_info.value)
    assert [p.path for p in exc_info.value.problems] == ["event_type"]


def test_invalid_event_type_message_shortens_long_names() -> None:
    with pytest.raises(errors.InvalidPattern) as exc_info:
        patterns.validate_event_type("y" * 500)
    assert "y" * 41 not in str(exc_info.value)
    assert "'" + "y" * 40 + "...'" in str(exc_info.value)


@pytest.mark.parametrize(
    "pattern", ["*", "order", "order.filled", "order.*", "a.b-c.d_e.*", "x" * 128 + ".*"]
)
def test_valid_patterns(pattern: str) -> None:
    assert patterns.validate_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "must be 1 to 128 characters long"),
        ("x" * 129 + ".*", "must be 1 to 128 characters long"),
        ("order*", "may use '*' only alone or as a last '.*' segment"),
        ("*.filled", "may use '*' only alone or as a last '.*' segment"),
        ("order.*.filled", "may use '*' only alone or as a last '.*' segment"),
        ("order.*.*", "may use '*' only alone or as a last '.*' segment"),
        ("**", "may use '*' only alone or as a last '.*' segment"),
        ("order.", "dot-separated segments"),
        ("order..*", "dot-separated segments"),
        ("order.?", "dot-separated segments"),
    ],
)
def test_invalid_patterns(pattern: str, message: str) -> None:
    with pytest.raises(errors.InvalidPattern) as exc_info:
        patterns.validate_pattern(pattern)
    assert message in str(exc_info.value)
    assert [p.path for p in exc_info.value.problems] == ["pattern"]


MATCH_TABLE = [
    ("*", "order", True),
    ("*", "order.filled.partial", True),
    ("order", "order", True),
    ("order", "order.filled", False),
    ("order.filled", "order.filled", True),
    ("order.filled", "order.filled.partial", False),
    ("order.filled", "order.fille", False),
    ("order.filled", "Order.filled", False),
    ("order.*", "order.filled", True),
    ("order.*", "order.filled.partial", True),
    ("order.*", "order", False),
    ("order.*", "orders.x", False),
    ("order.*", "preorder.x", False),
    ("order.filled.*", "order.filled.partial", True),
    ("order.filled.*", "order.filled", False),
    ("order.filled.*", "order.cancelled.partial", False),
    ("a.*", "a.b.c.d.e", True),
    ("a.b.*", "a.bc.d", False),
]


@pytest.mark.parametrize(("pattern", "event_type", "expected"), MATCH_TABLE)
def test_matches(pattern: str, event_type: str, expected: bool) -> None:
    assert patterns.matches(pattern, event_type) is expected


@pytest.mark.parametrize(("pattern", "event_type", "expected"), MATCH_TABLE)
def test_pattern_set_of_one_agrees_with_matches(
    pattern: str, event_type: str, expected: bool
) -> None:
    assert patterns.PatternSet([pattern]).matches(event_type) is expected


def test_pattern_set_agrees_with_any_match() -> None:
    event_types = sorted({event_type for _, event_type, _ in MATCH_TABLE})
    groups = [
        ["order.*", "a.b.*"],
        ["order", "order.filled.*", "a.*"],
        ["order.filled", "preorder.x"],
        ["*", "order"],
        [],
    ]
    for group in groups:
        compiled = patterns.PatternSet(group)
        for event_type in event_types:
            expected = any(patterns.matches(p, event_type) for p in group)
            assert compiled.matches(event_type) is expected, (group, event_type)


def test_pattern_set_keeps_order_and_drops_duplicates() -> None:
    compiled = patterns.PatternSet(["b.*", "a", "b.*", "*"])
    assert compiled.patterns == ("b.*", "a", "*")
    assert repr(compiled) == "PatternSet(['b.*', 'a', '*'])"


def test_empty_pattern_set_matches_nothing() -> None:
    assert not patterns.PatternSet([]).matches("order")


def test_pattern_set_validates() -> None:
    with pytest.raises(errors.InvalidPattern, match="only alone"):
        patterns.PatternSet(["order.*", "order*"])


def test_pattern_set_accepts_any_iterable() -> None:
    compiled = patterns.PatternSet(p for p in ("x.*",))
    assert compiled.matches("x.y")
    assert compiled.patterns == ("x.*",)
