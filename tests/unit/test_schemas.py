"""Payload schemas of event types (pure): checking a schema, and listing a payload's violations."""

from __future__ import annotations

from typing import Any

import pytest

from hookd.domain import errors, tenants
from hookd.domain.errors import Problem
from hookd.policy import schemas

ORDER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "amount": {"type": "number", "minimum": 0},
        "side": {"type": "string", "enum": ["buy", "sell"]},
        "a/b~c": {"type": "string"},
        "legs": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["amount", "side"],
}


def paths(problems: list[Problem]) -> list[str]:
    return [p.path for p in problems]


# checking a schema ---------------------------------------------------------------------------
def test_a_good_schema_has_no_problems() -> None:
    assert schemas.check_schema(ORDER) == []
    assert schemas.check_schema({"$schema": schemas.DIALECT, "type": "object"}) == []
    assert schemas.check_schema({"$schema": schemas.DIALECT + "#"}) == []
    assert schemas.check_schema({}) == []  # anything goes


def test_every_metaschema_problem_is_listed_with_its_pointer() -> None:
    problems = schemas.check_schema(
        {
            "type": "strng",
            "required": "amount",
            "properties": {"a": {"minimum": "zero", "pattern": "("}},
        }
    )
    assert sorted(paths(problems)) == [
        "/properties/a/minimum",
        "/properties/a/pattern",  # not a regular expression
        "/required",
        "/type",
    ]
    assert all(p.message for p in problems)


@pytest.mark.parametrize("schema", [[], "object", 3, None, True])
def test_a_schema_must_be_an_object(schema: object) -> None:
    (problem,) = schemas.check_schema(schema)
    assert problem.path == ""
    assert "JSON object" in problem.message


def test_only_draft_2020_12() -> None:
    (problem,) = schemas.check_schema({"$schema": "http://json-schema.org/draft-07/schema#"})
    assert problem.path == "/$schema"
    assert "2020-12" in problem.message


def test_references_must_be_local_and_resolve() -> None:
    problems = schemas.check_schema(
        {
            "$defs": {"money": {"type": "number"}},
            "properties": {
                "ok": {"$ref": "#/$defs/money"},
                "remote": {"$ref": "https://example.com/schema.json"},
                "relative": {"$ref": "other.json"},
                "missing": {"$ref": "#/$defs/nothing"},
            },
        }
    )
    assert sorted(paths(problems)) == [
        "/properties/missing/$ref",
        "/properties/relative/$ref",
        "/properties/remote/$ref",
    ]
    by_path = {p.path: p.message for p in problems}
    assert "local" in by_path["/properties/remote/$ref"]
    assert "does not resolve" in by_path["/properties/missing/$ref"]


def test_a_schema_that_refers_to_itself_without_end_is_refused() -> None:
    (problem,) = schemas.check_schema({"$ref": "#"})
    assert "without end" in problem.message
    # recursion through the instance is fine: it ends with the payload
    tree = {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}}
    assert schemas.check_schema(tree) == []
    validator = schemas.compile_schema(tree)
    assert schemas.violations(validator, {"children": [{"children": [{}]}]}) == []
    assert paths(schemas.violations(validator, {"children": [{"children": [1]}]})) == [
        "/children/0/children/0"
    ]


def test_an_oversized_schema_is_refused() -> None:
    big = {"description": "x" * (schemas.MAX_SCHEMA_BYTES + 1)}
    (problem,) = schemas.check_schema(big)
    assert "bytes" in problem.message


# validating a payload ------------------------------------------------------------------------
def test_a_matching_payload_has_no_violations() -> None:
    validator = schemas.compile_schema(ORDER)
    assert schemas.violations(validator, {"amount": 3, "side": "buy", "extra": True}) == []


def test_every_violation_is_listed_sorted_with_json_pointers() -> None:
    validator = schemas.compile_schema(ORDER)
    problems = schemas.violations(
        validator, {"amount": -1, "a/b~c": 5, "legs": [1, "x", 2, "y", 3] + ["z"] * 8}
    )
    assert paths(problems) == [
        "",  # side is missing
        "/a~1b~0c",  # RFC 6901 escapes
        "/amount",
        "/legs/1",
        "/legs/3",
        *[f"/legs/{i}" for i in range(5, 13)],  # numeric order, not text order
    ]
    assert problems[0].message == "'side' is a required property"
    assert problems[2].message == "-1 is less than the minimum of 0"


def test_violations_are_bounded() -> None:
    validator = schemas.compile_schema(ORDER)
    problems = schemas.violations(validator, {"amount": 1, "side": "buy", "legs": ["x"] * 5000})
    assert len(problems) == schemas.MAX_PROBLEMS + 1
    assert "more problems" in problems[-1].message
    long = schemas.violations(validator, {"amount": 1, "side": "x" * 10_000})
    assert len(long[0].message) <= schemas.MAX_MESSAGE


def test_format_is_an_annotation() -> None:
    validator = schemas.compile_schema({"properties": {"at": {"format": "date-time"}}})
    assert schemas.violations(validator, {"at": "not a date"}) == []


def test_an_unresolvable_reference_at_validation_is_a_problem_not_a_crash() -> None:
    # (check_schema refuses these; a schema stored by an older release might still hold one)
    validator = schemas.compile_schema({"properties": {"a": {"$ref": "https://example.com/x"}}})
    (problem,) = schemas.violations(validator, {"a": 1})
    assert "unresolvable" in problem.message


# patterns: RE2, never a backtracking engine ------------------------------------------------------
#: A pattern a backtracking engine takes exponential time on (`^(a+)+$`, for `aaaa…b`).
EVIL = "^(a+)+$"
EVIL_TEXT = "a" * 40 + "b"


def test_pattern_keywords_match_as_json_schema_says() -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "[0-9]{3}"}},
        "patternProperties": {"^x-": {"type": "integer"}},
    }
    assert schemas.check_schema(schema) == []
    validator = schemas.compile_schema(schema)
    # a pattern is unanchored; patternProperties apply to the keys they match only
    assert schemas.violations(validator, {"code": "ab123cd", "x-a": 1, "y": "s"}) == []
    assert schemas.violations(validator, {"code": "ab12", "x-a": "one"}) == [
        Problem("/code", "'ab12' does not match '[0-9]{3}'"),
        Problem("/x-a", "'one' is not of type 'integer'"),
    ]
    assert schemas.violations(validator, {"code": 7}) == [
        Problem("/code", "7 is not of type 'string'")  # pattern applies to strings only
    ]


def _check_in_a_process(schema: dict[str, Any], payload: object) -> list[Problem]:
    """Validate in a child process, killed after 20 s: a backtracking engine on EVIL_TEXT would
    run for days, and a test must be able to fail without hanging the suite."""
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from hookd.policy import schemas\n"
        "schema, payload = json.loads(sys.stdin.read())\n"
        "v = schemas.compile_schema(schema)\n"
        "print(json.dumps([[p.path, p.message] for p in schemas.violations(v, payload)]))\n"
    )
    import json

    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps([schema, payload]),
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("validating the payload did not finish in 20 s (backtracking)")
    return [Problem(path, message) for path, message in json.loads(done.stdout)]


def test_a_pattern_cannot_make_a_payloads_check_take_exponential_time() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": EVIL}}}
    assert schemas.check_schema(schema) == []
    assert paths(_check_in_a_process(schema, {"name": EVIL_TEXT})) == ["/name"]


def test_a_pattern_property_cannot_either() -> None:
    schema = {"type": "object", "patternProperties": {EVIL: {"type": "integer"}}}
    assert schemas.check_schema(schema) == []
    assert _check_in_a_process(schema, {EVIL_TEXT: "x", "aaa": 1}) == []


def test_patterns_re2_cannot_take_are_refused_with_their_pointer() -> None:
    problems = schemas.check_schema(
        {
            "type": "object",
            "properties": {
                "code": {"type": "string", "pattern": "^(?=.*[0-9])[a-z0-9]+$"},  # lookahead
                "list": {"type": "array", "items": {"pattern": "ok"}},
            },
            "patternProperties": {"(a)\\1": {"pattern": "(?<=x)y"}},  # backreference, lookbehind
        }
    )
    assert paths(problems) == [
        "/properties/code/pattern",
        "/patternProperties/(a)\\1",
        "/patternProperties/(a)\\1/pattern",
    ]
    assert all("RE2" in p.message and "lookaround" in p.message for p in problems)


def test_pointer() -> None:
    assert schemas.pointer([]) == ""
    assert schemas.pointer(["a", 0, "b/c", "~"]) == "/a/0/b~1c/~0"


# tenant ids ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["default", "acme", "a", "tenant-b", "t_1", "0abc", "a" * 63])
def test_valid_tenant_ids(value: str) -> None:
    assert tenants.validate_tenant_id(value) == value


@pytest.mark.parametrize(
    "value", ["", "Acme", "-a", "_a", "a b", "a.b", "a/b", "a" * 64, "é", "acme\n"]
)
def test_invalid_tenant_ids(value: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        tenants.validate_tenant_id(value)
    assert [p.path for p in caught.value.problems] == ["tenant_id"]
