"""The translation catalogue: extract what the code and templates mark, compare it with the
Chinese ``.po`` file, and bring the ``.po`` file up to date.

    python -m tests.support.catalogue            # update the .po file; list what lacks Chinese
    python -m tests.support.catalogue fill X.json  # also take translations from {msgid: msgstr}
    python -m tests.support.catalogue check X.json # what still lacks Chinese; writes nothing

The JSON file may key an entry with a context as ``"context\\u0004msgid"`` (gettext's own
separator). ``tests/app/test_translations.py`` fails while any marked text has no Chinese.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from server.core.i18n import CHINESE, TRANSLATIONS_DIR, catalogue_path

REPO_ROOT = TRANSLATIONS_DIR.parent.parent
MAPPING = TRANSLATIONS_DIR / "babel.cfg"
# The marking functions besides gettext's defaults (_ gettext ngettext pgettext ...).
KEYWORDS = ("_l", "lazy_gettext", "_p:1c,2", "lazy_pgettext:1c,2", "lazy_ngettext:1,2")
CONTEXT_SEPARATOR = "\x04"
HEADER = (
    "# Simplified Chinese for the Gatekeeper server: every page, message and guest text.\n"
    "# Brought up to date with `python -m tests.support.catalogue` (docs/i18n.md)."
)
# %(name)s and %s placeholders; %% is a literal percent sign.
_PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[-#0 +]*\d*(?:\.\d+)?[sdifr]")


def extract() -> Catalog:
    """Every text the server marks for translation, as ``pybabel extract`` finds it."""
    with tempfile.TemporaryDirectory(prefix="gk-catalogue-") as tmp:
        template = Path(tmp) / "messages.pot"
        command = [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "--no-location",
            "--sort-output",
            "-F",
            str(MAPPING),
            "-o",
            str(template),
        ]
        for keyword in KEYWORDS:
            command += ["-k", keyword]
        done = subprocess.run([*command, "."], cwd=REPO_ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pybabel extract failed:\n{done.stderr}")
        with template.open("rb") as source:
            return read_po(source)


def read_catalogue(locale: str = CHINESE) -> Catalog:
    with catalogue_path(locale).open("rb") as source:
        return read_po(source, locale=locale)


def key(message_id: str | tuple[str, ...], context: str | None) -> str:
    """One string per entry: ``context\\x04msgid`` (the singular for plurals)."""
    singular = message_id[0] if isinstance(message_id, tuple) else message_id
    return f"{context}{CONTEXT_SEPARATOR}{singular}" if context else singular


def placeholders(text: str) -> set[str]:
    """The named and positional placeholders of a text (``%%`` is not one)."""
    return {match.group(1) or "%" for match in _PLACEHOLDER.finditer(text.replace("%%", ""))}


def untranslated(catalogue: Catalog, extracted: Catalog) -> list[str]:
    """Texts the code marks that the catalogue lacks, leaves empty or marks fuzzy."""
    missing = []
    for message in extracted:
        if not message.id:
            continue
        found = catalogue.get(message.id, context=message.context)
        strings = found.string if found is not None and isinstance(found.string, tuple) else None
        if (
            found is None
            or found.fuzzy
            or not found.string
            or (strings is not None and not all(strings))
        ):
            missing.append(key(message.id, message.context))
    return missing


def update(translations: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """Bring the Chinese catalogue in line with the code: new texts added (with the given
    translations), texts no longer marked dropped. Returns (added, dropped) keys."""
    extracted = extract()
    catalogue = read_catalogue()
    wanted = {key(m.id, m.context): m for m in extracted if m.id}
    present = {key(m.id, m.context): m for m in catalogue if m.id}
    for entry in set(present) - set(wanted):
        message = present[entry]
        catalogue.delete(message.id, context=message.context)
    for entry, message in wanted.items():
        string = (translations or {}).get(entry)
        if entry in present and string is None:
            continue
        if string is None:
            string = ""
        if isinstance(message.id, tuple) and not isinstance(string, tuple):
            string = (string,)  # Chinese has one plural form
        if entry in present:
            present[entry].string = string
            present[entry].flags.discard("fuzzy")
        else:
            catalogue.add(message.id, string, context=message.context)
    catalogue.header_comment = HEADER
    with catalogue_path().open("wb") as target:
        write_po(target, catalogue, width=0, sort_output=True)
    return sorted(set(wanted) - set(present)), sorted(set(present) - set(wanted))


def check(files: list[str]) -> int:
    """Texts still without Chinese once the JSON files are taken into account (nothing is
    written): what someone translating part of the server has left to do."""
    given: dict[str, str] = {}
    for name in files:
        given.update(json.loads(Path(name).read_text(encoding="utf-8")))
    catalogue = read_catalogue()
    missing = [entry for entry in untranslated(catalogue, extract()) if not given.get(entry)]
    for entry in missing:
        print("untranslated:", entry.replace(CONTEXT_SEPARATOR, " | "))
    wrong = [
        entry
        for entry, string in given.items()
        if placeholders(entry.split(CONTEXT_SEPARATOR)[-1]) != placeholders(string)
    ]
    for entry in wrong:
        print("placeholders differ:", entry.replace(CONTEXT_SEPARATOR, " | "))
    return 1 if missing or wrong else 0


def main(argv: list[str]) -> int:
    translations: dict[str, str] = {}
    if argv[:1] == ["check"]:
        return check(argv[1:])
    if argv[:1] == ["fill"] and len(argv) == 2:
        translations = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    elif argv:
        print(__doc__, file=sys.stderr)
        return 2
    added, dropped = update(translations)
    missing = untranslated(read_catalogue(), extract())
    print(f"catalogue: {len(added)} added, {len(dropped)} dropped, {len(missing)} untranslated")
    for entry in missing:
        print("  untranslated:", entry.replace(CONTEXT_SEPARATOR, " | "))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
