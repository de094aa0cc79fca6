"""Lone UTF-16 surrogates found wherever they hide in decoded JSON (gatekeeper.text)."""

from __future__ import annotations

import json

import pytest

from gatekeeper.text import lone_surrogate_at


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ('"\\ud800"', ""),
        ('{"username": "u\\ud800"}', "username"),
        ('{"a": {"b": ["ok", "x\\udfff"]}}', "a.b.1"),
        ('{"\\ud800": 1}', ""),
        ('{"n": {"\\udc00k": "v"}}', "n"),
        ('[[[[["\\ud83d"]]]]]', "0.0.0.0.0"),
        ('{"first": "\\ud800", "second": "\\udc00"}', "first"),
    ],
)
def test_lone_surrogates_are_found_with_their_path(body: str, path: str) -> None:
    assert lone_surrogate_at(json.loads(body)) == path


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "王小明", "emoji": "\\ud83d\\ude00", "n": 3, "t": true, "z": null}',
        '["plain", 1.5, [], {}]',
        '"浙B12345"',
    ],
)
def test_valid_text_passes(body: str) -> None:
    assert lone_surrogate_at(json.loads(body)) is None


def test_a_deep_document_is_walked_without_recursion() -> None:
    value: object = "\ud800"
    for _ in range(5000):
        value = [value]
    assert lone_surrogate_at(value) == ".".join(["0"] * 5000)
