"""Payload schemas of event types: JSON Schema, draft 2020-12. Pure: nothing is fetched.

    problems = check_schema(schema)          # every problem with the schema itself
    validator = compile_schema(schema)       # once per schema version (the engine caches it)
    problems = violations(validator, payload)  # every violation, path = JSON pointer

Rules beyond the metaschema, so that validating a payload never does I/O and never fails:

- `$schema`, when given, must name draft 2020-12;
- `$ref` and `$dynamicRef` must be local (`#…`) and must resolve;
- `format` is an annotation, as draft 2020-12 says by default: it is not asserted;
- `pattern` and the keys of `patternProperties` are matched by RE2 (google-re2), in time linear
  in the text, never by a backtracking engine: a schema's author cannot make a payload's check
  take exponential time (`^(a+)+$` against `aaaa…b`). RE2 has no lookaround and no
  backreferences; a pattern that needs them is refused when the schema is checked.

Problems carry JSON-pointer paths relative to the document checked (`/properties/amount/type`
for a schema, `/amount` for a payload; the root is ``""``). Messages are cut to
`MAX_MESSAGE` characters (jsonschema quotes the offending value, which may be large), and at most
`MAX_PROBLEMS` are listed: a last problem says how many more there were.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, cast

import orjson
import re2  # type: ignore[import-untyped]  # google-re2: no type information
import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError as SchemaViolation
from jsonschema.protocols import Validator

from hookd.domain.errors import Problem

DIALECT = "https://json-schema.org/draft/2020-12/schema"
MAX_SCHEMA_BYTES = 64 * 1024
MAX_PROBLEMS = 100
MAX_MESSAGE = 300

_BASE_URI = "urn:hookd:event-type-schema"
_META = Draft202012Validator(
    Draft202012Validator.META_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER
)


#: Compiled patterns kept (a schema's patterns are compiled once, then looked up).
PATTERN_CACHE = 4096

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is a Problem, not a line on stderr


@functools.lru_cache(maxsize=PATTERN_CACHE)
def _regex(pattern: str) -> Any:
    """`pattern` compiled by RE2; `re2.error` when RE2 cannot take it."""
    return re2.compile(pattern, _RE2_OPTIONS)


def matches(pattern: str, text: str) -> bool:
    """Whether `pattern` matches somewhere in `text` (JSON Schema's `pattern`: unanchored), in
    time linear in `text`."""
    return _regex(pattern).search(text) is not None


# jsonschema's keyword functions: (validator, the keyword's value, the instance, the schema)
def _pattern(
    validator: Any, pattern: str, instance: object, schema: Mapping[str, Any]
) -> Iterator[SchemaViolation]:
    if isinstance(instance, str) and not matches(pattern, instance):
        yield SchemaViolation(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any,
    patterns: Mapping[str, Any],
    instance: object,
    schema: Mapping[str, Any],
) -> Iterator[SchemaViolation]:
    if not isinstance(instance, Mapping):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if matches(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


#: Draft 2020-12, with `pattern` and `patternProperties` matched by RE2.
PayloadValidator: type[Validator] = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties}
)


def encoded_size(value: object) -> int:
    """Bytes of `value` as JSON, as the stores write it. Raises `TypeError` for what they cannot
    write (not JSON, integers beyond 64 bits), `ValueError` for NaN and infinities (which they
    would write as null, changing what a schema says)."""
    size = len(orjson.dumps(value))
    json.dumps(value, allow_nan=False)
    return size


def pointer(parts: Iterable[str | int]) -> str:
    """The JSON pointer (RFC 6901) of a path: ``["a", 0, "b/c"]`` → ``/a/0/b~1c``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def check_schema(schema: object) -> list[Problem]:
    """Every problem that makes `schema` unusable as a payload schema (empty when it is fine)."""
    if not isinstance(schema, Mapping):
        return [Problem("", "must be a JSON object (a JSON Schema)")]
    try:
        size = encoded_size(schema)
    except (TypeError, ValueError) as exc:
        return [Problem("", f"must be JSON: {exc}")]
    if size > MAX_SCHEMA_BYTES:
        return [Problem("", f"is {size} bytes of JSON; at most {MAX_SCHEMA_BYTES} are allowed")]
    dialect = schema.get("$schema")
    if dialect is not None and str(dialect).rstrip("#") != DIALECT:
        return [Problem("/$schema", f"only draft 2020-12 ({DIALECT}) is supported")]
    problems = _listed(
        (pointer(e.absolute_path), _cut(e.message)) for e in _META.iter_errors(schema)
    )
    if problems:
        return problems
    problems = _reference_problems(schema) or _pattern_problems(schema)
    if problems:
        return problems
    try:
        list(PayloadValidator(schema).iter_errors({}))
    except RecursionError:
        return [Problem("", "refers to itself without end (e.g. a root `$ref` of `#`)")]
    except referencing.exceptions.Unresolvable as exc:  # e.g. a `$ref` under a nested `$id`
        return [Problem("", f"has an unresolvable reference: {exc}")]
    return []


def compile_schema(schema: Mapping[str, Any]) -> Validator:
    """A validator for a schema `check_schema` accepted."""
    return PayloadValidator(schema)


def violations(validator: Validator, instance: object) -> list[Problem]:
    """Every way `instance` violates the validator's schema, sorted by path, then message."""
    try:
        found = [(e.absolute_path, _cut(e.message)) for e in _errors(validator, instance)]
    except RecursionError:
        return [Problem("", "the schema refers to itself without end")]
    except referencing.exceptions.Unresolvable as exc:
        return [Problem("", f"the schema has an unresolvable reference: {exc}")]
    found.sort(key=lambda item: ([_order(p) for p in item[0]], item[1]))
    return _listed((pointer(path), message) for path, message in found)


def _errors(validator: Validator, instance: object) -> Iterator[SchemaViolation]:
    # at most one more than shown, so that a payload with a million violations costs little
    for count, error in enumerate(validator.iter_errors(cast(Any, instance))):
        if count > MAX_PROBLEMS:
            return
        yield error


def _order(part: str | int) -> tuple[int, int, str]:
    return (0, part, "") if isinstance(part, int) else (1, 0, part)


def _listed(found: Iterable[tuple[str, str]]) -> list[Problem]:
    problems = [Problem(path, message) for path, message in found]
    if len(problems) > MAX_PROBLEMS:
        problems = problems[:MAX_PROBLEMS]
        problems.append(Problem("", f"more problems not listed (the first {MAX_PROBLEMS} are)"))
    return problems


def _cut(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _reference_problems(schema: Mapping[str, Any]) -> list[Problem]:
    resource = referencing.jsonschema.DRAFT202012.create_resource(schema)
    resolver = referencing.Registry().with_resource(_BASE_URI, resource).resolver(_BASE_URI)
    problems = []
    for path, keyword, ref in _members(schema, ()):
        if keyword not in ("$ref", "$dynamicRef"):
            continue
        where = pointer((*path, keyword))
        if not isinstance(ref, str) or not ref.startswith("#"):
            problems.append(Problem(where, "only local references (starting with '#') are allowed"))
            continue
        try:
            resolver.lookup(ref)
        except referencing.exceptions.Unresolvable:
            problems.append(Problem(where, f"{ref!r} does not resolve within this schema"))
    return problems


def _pattern_problems(schema: Mapping[str, Any]) -> list[Problem]:
    """A problem for every pattern RE2 cannot take (lookaround, backreferences, …)."""
    found: list[tuple[tuple[str | int, ...], str]] = []  # (path, pattern)
    for path, key, value in _members(schema, ()):
        if key == "pattern" and isinstance(value, str):
            found.append(((*path, key), value))
        elif key == "patternProperties" and isinstance(value, Mapping):
            found.extend(((*path, key, pattern), pattern) for pattern in value)
    problems = []
    for path, pattern in found:
        try:
            _regex(pattern)
        except re2.error as exc:
            reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
            message = (
                f"{pattern!r} is not supported ({reason}): patterns are matched by RE2, which "
                "has no lookaround and no backreferences"
            )
            problems.append((pointer(path), _cut(message)))
    return _listed(problems)


def _members(
    node: object, path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str, object]]:
    """(path of its object, key, value) of every member of every object in a schema document,
    but inside the values that are data, not schemas (`const`, `enum`, `default`, `examples`)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield path, key, value
            if key not in ("const", "enum", "default", "examples"):
                yield from _members(value, (*path, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _members(item, (*path, index))
