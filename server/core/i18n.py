"""Languages: Simplified Chinese first, English second.

Every text people read is written in English in the code and templates and translated
through one catalogue, ``server/translations/zh_CN/LC_MESSAGES/messages.po`` (extracted
with ``pybabel extract``, see ``docs/i18n.md``). The catalogue is read from the ``.po``
file itself, compiled in memory the first time a language is asked for, so there is no
binary file to keep in step with it.

Which language a request gets:

- pages: the signed-in user's choice, else the visitor's choice (the ``gk_lang`` cookie
  the language switch sets), else the browser's ``Accept-Language``, else the community's
  default (``default_locale`` in its settings, for the community the page is about or the
  user's first), else Chinese;
- the API under ``/api``: ``Accept-Language`` only, else English. Problem documents keep
  their English ``title`` and stable ``type``; their ``detail`` follows the language.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from babel import support
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, g, has_app_context, has_request_context, request
from flask_babel import Domain, get_locale

# The languages the server speaks, the default first; English is the source language.
CHINESE = "zh_CN"
ENGLISH = "en"
LOCALES = (CHINESE, ENGLISH)
DEFAULT_LOCALE = CHINESE
# The API's language when the caller names none: clients are programs, and the docs are English.
API_DEFAULT_LOCALE = ENGLISH

# The command line and the logs, where no request says whom the text is for.
OUTSIDE_REQUEST_LOCALE = ENGLISH

# The visitor's choice, for people who are not signed in (guests, the sign-in page).
LOCALE_COOKIE = "gk_lang"

# How each language names itself in the language switch.
LANGUAGE_NAMES = {CHINESE: "中文", ENGLISH: "English"}

TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"
DOMAIN = "messages"


def catalogue_path(locale: str = CHINESE) -> Path:
    """The ``.po`` file of a language."""
    return TRANSLATIONS_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def load_translations(locale: str) -> support.Translations | support.NullTranslations:
    """The catalogue of ``locale`` compiled from its ``.po`` file (English needs none)."""
    path = catalogue_path(locale)
    if not path.is_file():
        return support.NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=locale)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return support.Translations(compiled, domain=DOMAIN)


class CatalogueDomain(Domain):
    """Flask-Babel's domain, reading the ``.po`` catalogues (one compile per language)."""

    def get_translations(self) -> support.Translations | support.NullTranslations:
        if not has_app_context():
            return support.NullTranslations()
        locale = current_locale()
        try:
            return self.cache[locale]
        except KeyError:
            translations = self.cache[locale] = load_translations(locale)
            return translations


def normalise(value: str | None) -> str | None:
    """A supported locale for ``zh``, ``zh-CN``, ``zh_Hans``, ``en-GB`` ...; None otherwise."""
    if not value:
        return None
    primary = value.replace("-", "_").split("_")[0].lower()
    return {"zh": CHINESE, "en": ENGLISH}.get(primary)


def from_accept_language() -> str | None:
    """The first supported language the browser or client asks for, by its weights."""
    for value, _quality in request.accept_languages:
        locale = normalise(value)
        if locale is not None:
            return locale
    return None


def community_locale(community: Any) -> str | None:
    """A community's default language (``default_locale`` in its settings), if it set one."""
    if community is None:
        return None
    return normalise((community.settings or {}).get("default_locale"))


def use_community(community: Any) -> None:
    """Let the community a page is about decide the language when nobody else did."""
    g.gk_community = community
    from flask_babel import refresh

    refresh()


def select_locale() -> str:
    """The language of this request (the order is the module docstring's)."""
    if not has_request_context():
        return OUTSIDE_REQUEST_LOCALE
    if request.path.startswith("/api/"):
        return from_accept_language() or API_DEFAULT_LOCALE
    from flask_login import current_user

    user = current_user if current_user and current_user.is_authenticated else None
    choice = normalise(getattr(user, "locale", None)) or normalise(
        request.cookies.get(LOCALE_COOKIE)
    )
    if choice is not None:
        return choice
    asked = from_accept_language()
    if asked is not None:
        return asked
    community = getattr(g, "gk_community", None)
    if community is None and user is not None and getattr(user, "communities", None):
        community = user.communities[0]
    return community_locale(community) or DEFAULT_LOCALE


def current_locale() -> str:
    """The language this request is answered in: ``zh_CN`` or ``en``.

    (Babel reads ``zh_CN`` as ``zh_Hans_CN``; the catalogue's folder is ``zh_CN``.)"""
    locale = get_locale()
    return normalise(str(locale)) if locale is not None else OUTSIDE_REQUEST_LOCALE


# BCP 47 tags for <html lang>.
_HTML_LANG = {CHINESE: "zh-CN", ENGLISH: "en"}


def html_lang(locale: str | None = None) -> str:
    """The BCP 47 tag for ``<html lang>``: ``zh-CN`` or ``en``."""
    return _HTML_LANG[locale or current_locale()]


def init_app(app: Flask) -> None:
    from server.extensions import babel

    babel.init_app(
        app,
        default_locale=DEFAULT_LOCALE,
        default_domain=DOMAIN,
        default_translation_directories=str(TRANSLATIONS_DIR),
        locale_selector=select_locale,
    )
    babel.domain_instance = CatalogueDomain(str(TRANSLATIONS_DIR), DOMAIN)
    app.jinja_env.globals.update(
        html_lang=html_lang,
        current_locale=current_locale,
        language_names=LANGUAGE_NAMES,
    )
