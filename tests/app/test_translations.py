"""The Chinese catalogue is complete: every text the code and templates mark has a
translation, with the same placeholders, and nothing stale is kept."""

from __future__ import annotations

import pytest

from server.core.i18n import CHINESE, load_translations
from tests.support.catalogue import (
    CONTEXT_SEPARATOR,
    extract,
    key,
    placeholders,
    read_catalogue,
    untranslated,
)


@pytest.fixture(scope="module")
def extracted():
    return extract()


@pytest.fixture(scope="module")
def catalogue():
    return read_catalogue()


def test_every_marked_text_has_chinese(extracted, catalogue) -> None:
    missing = untranslated(catalogue, extracted)
    assert not missing, (
        "texts without a Chinese translation (run `python -m tests.support.catalogue` and "
        "fill them in):\n  " + "\n  ".join(m.replace(CONTEXT_SEPARATOR, " | ") for m in missing)
    )


def test_the_catalogue_keeps_nothing_stale(extracted, catalogue) -> None:
    marked = {key(m.id, m.context) for m in extracted if m.id}
    stale = [key(m.id, m.context) for m in catalogue if m.id and key(m.id, m.context) not in marked]
    assert not stale, f"texts no longer in the code: {stale}"


def test_translations_keep_every_placeholder(catalogue) -> None:
    wrong = []
    for message in catalogue:
        if not message.id or not message.string:
            continue
        source = message.id[0] if isinstance(message.id, tuple) else message.id
        target = message.string[0] if isinstance(message.string, tuple) else message.string
        if placeholders(source) != placeholders(target):
            wrong.append((source, target))
    assert not wrong, wrong


def test_the_catalogue_compiles_and_translates(app) -> None:
    with app.test_request_context("/", headers={"Accept-Language": "zh-CN"}):
        translations = load_translations(CHINESE)
        assert translations.gettext("Sign out") == "退出登录"
        assert translations.pgettext("command", "open") == "开门"
        assert translations.pgettext("alert status", "open") == "待处理"


def test_placeholders_are_found() -> None:
    assert placeholders("%(name)s has %(count)d of 100%%") == {"name", "count"}
    assert placeholders("no placeholder") == set()
