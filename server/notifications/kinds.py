"""What residents are told, and on which channels: the kinds, their texts and the defaults.

Each kind names the values its text is made of (``params``: what ``notify`` must be given,
stored with the notification and sent to the SMS gateway), the portal's line, and the line a
phone's lock screen may show (Web Push): that one never names a person, a unit, a door or a
plate, only what happened, so that a phone lying on a table tells nobody else anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from flask_babel.speaklater import LazyString


class Kind(StrEnum):
    PASS_USED = "pass_used"  # noqa: S105 - a kind, not a password
    COURIER_CODE_USED = "courier_code_used"
    INTERCOM_CALL = "intercom_call"
    TAG_LEFT_PERIMETER = "tag_left_perimeter"
    LEASE_ENDING = "lease_ending"


class Channel(StrEnum):
    PORTAL = "portal"  # the resident portal's list, live
    PUSH = "push"  # Web Push to the account's subscribed browsers
    SMS = "sms"  # the community's SMS/WeChat gateway, to the person's phone


@dataclass(frozen=True)
class KindText:
    """A kind's words: its name (the preferences form), the portal's line (``%(param)s``
    placeholders; ``time``: the ``at`` param in the community's zone) and the lock screen's."""

    label: LazyString
    line: LazyString
    lock_screen: LazyString
    params: tuple[str, ...]


KINDS: dict[Kind, KindText] = {
    Kind.PASS_USED: KindText(
        _p("notification kind", "A guest's pass was used"),
        _l("%(guest)s's pass was used at %(door)s (%(time)s)."),
        _l("Your guest's pass was used"),
        ("guest", "door", "at", "pass_id"),
    ),
    Kind.COURIER_CODE_USED: KindText(
        _p("notification kind", "A courier code was used"),
        _l("Your courier code was used at %(door)s (%(time)s)."),
        _l("Your courier code was used"),
        ("door", "at"),
    ),
    Kind.INTERCOM_CALL: KindText(
        _p("notification kind", "Intercom calls"),
        _l("Someone called your home from %(door)s (%(time)s)."),
        _l("Someone is calling your home"),
        ("door", "at"),
    ),
    Kind.TAG_LEFT_PERIMETER: KindText(
        _p("notification kind", "A family member's tag left the community"),
        _l("%(name)s's tag left the community through %(place)s without a guardian (%(time)s)."),
        _l("A family member left the community"),
        ("name", "place", "at"),
    ),
    Kind.LEASE_ENDING: KindText(
        _p("notification kind", "My lease is ending"),
        _l("Your lease ends on %(date)s; ask the property office to renew it."),
        _l("Your lease ends soon"),
        ("date",),
    ),
}

CHANNEL_LABELS: dict[Channel, LazyString] = {
    Channel.PORTAL: _p("notification channel", "Portal"),
    Channel.PUSH: _p("notification channel", "Phone notification"),
    Channel.SMS: _p("notification channel", "SMS"),
}

# Until an account chooses: the portal for all, Web Push where a browser subscribed, no SMS.
DEFAULTS: dict[Channel, bool] = {Channel.PORTAL: True, Channel.PUSH: True, Channel.SMS: False}

# Where a push and the portal's lines lead (the portal's notification list).
LINK = "/my/notifications"


class _Blank(dict[str, Any]):
    """Params as a text reads them: a value a stored row lacks reads as "—", never an error."""

    def __missing__(self, key: str) -> str:
        return "—"


def line(kind: str, params: Mapping[str, Any], zone: str) -> str:
    """The portal's line of a notification, in the current language; ``time`` is its ``at``
    in the community's zone (``zone``)."""
    try:
        text = KINDS[Kind(kind)]
    except ValueError:
        return kind
    values = _Blank({key: str(value) for key, value in params.items()})
    at = params.get("at")
    if isinstance(at, str):
        with contextlib.suppress(ValueError):
            values["time"] = (
                datetime.fromisoformat(at).astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M")
            )
    return str(text.line) % values


def lock_screen(kind: str) -> str:
    """What a phone's lock screen may show of this kind, in the current language."""
    try:
        return str(KINDS[Kind(kind)].lock_screen)
    except ValueError:
        return str(_l("You have a new notification"))


# A push's title: the service's name, nothing about the home.
APP_NAME = _l("Gatekeeper")
