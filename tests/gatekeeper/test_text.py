"""Unstorable text (lone UTF-16 surrogates, NUL) found wherever it hides in decoded JSON
(gatekeeper.text)."""

from __future__ import annotations

import json

import pytest

from gatekeeper.text import Flaw, text_flaw, unstorable_text_at


@pytest.mark.parametrize(
    ("body", "path", "flaw"),
    [
        ('"\\ud800"', "", Flaw.LONE_SURROGATE),
        ('{"username": "u\\ud800"}', "username", Flaw.LONE_SURROGATE),
        ('{"a": {"b": ["ok", "x\\udfff"]}}', "a.b.1", Flaw.LONE_SURROGATE),
        ('{"\\ud800": 1}', "", Flaw.LONE_SURROGATE),
        ('{"n": {"\\udc00k": "v"}}', "n", Flaw.LONE_SURROGATE),
        ('[[[[["\\ud83d"]]]]]', "0.0.0.0.0", Flaw.LONE_SURROGATE),
        ('{"first": "\\ud800", "second": "\\udc00"}', "first", Flaw.LONE_SURROGATE),
        ('{"name": "A\\u0000B"}', "name", Flaw.NUL),
        ('{"a": ["ok", {"b\\u0000": 1}]}', "a.1", Flaw.NUL),
        ('{"first": "\\u0000", "second": "\\ud800"}', "first", Flaw.NUL),
        ('"\\u0000\\ud800"', "", Flaw.NUL),
    ],
)
def test_unstorable_text_is_found_with_its_path(body: str, path: str, flaw: Flaw) -> None:
    assert unstorable_text_at(json.loads(body)) == (path, flaw)


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "王小明", "emoji": "\\ud83d\\ude00", "n": 3, "t": true, "z": null}',
        '["plain", 1.5, [], {}]',
        '"浙B12345"',
        '{"tab": "a\\tb", "line": "a\\nb", "bell": "\\u0007", "zero": "0"}',
    ],
)
def test_valid_text_passes(body: str) -> None:
    assert unstorable_text_at(json.loads(body)) is None


def test_a_deep_document_is_walked_without_recursion() -> None:
    value: object = "\ud800"
    for _ in range(5000):
        value = [value]
    assert unstorable_text_at(value) == (".".join(["0"] * 5000), Flaw.LONE_SURROGATE)


def test_one_text_is_judged_alone() -> None:
    assert text_flaw("staff\x00a") is Flaw.NUL
    assert text_flaw("王\udfff") is Flaw.LONE_SURROGATE
    assert text_flaw("王小明") is None
