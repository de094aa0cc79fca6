"""Alert summaries in the reader's language.

An alert's ``summary`` column is English: the API, MQTT and webhooks send it as it is. A rule
raises with a :class:`Summary` instead of a finished sentence: the English text with named
placeholders (marked with :func:`N_` so that ``pybabel extract`` finds it) and the values.
``raise_alert`` stores the English sentence in ``summary`` and the text and values in the
alert's evidence (``summary_text``, never sent: ``channels.evidence_of`` leaves it out);
pages show :func:`display_summary`, the text translated and filled in. Alerts raised before
(or with a plain string) show their stored summary.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from flask import has_request_context
from flask_babel import force_locale
from flask_babel import gettext as _

from gatekeeper.vocabulary import AlertType
from server.core.i18n import ENGLISH
from server.core.wording import word

# Where ``raise_alert`` keeps the text and its values in ``Alert.evidence``.
SUMMARY_KEY = "summary_text"


def N_(text: str) -> str:  # noqa: N802 (gettext's name for "mark, do not translate yet")
    """Marks ``text`` for the catalogue; translated when shown (``display_summary``)."""
    return text


class Phrase(str):
    """A value that is itself a marked text (``N_``), translated when shown."""

    __slots__ = ()


@dataclass(frozen=True)
class Summary:
    """An alert's summary: English ``text`` with ``%(name)s`` placeholders, and its values.

    Values that are domain enums (an alert type, a zone) are shown through ``word``;
    :class:`Phrase` values are translated; anything else is shown as it is.
    """

    text: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def _plain(self) -> dict[str, Any]:
        return {
            name: value.value if isinstance(value, StrEnum) else value
            for name, value in self.params.items()
        }

    def english(self) -> str:
        """The sentence stored in ``Alert.summary``: English whoever's request raised it."""
        if not has_request_context():  # outside a request everything is English already
            return self.text % _shown(self.as_json())
        with force_locale(ENGLISH):
            return self.text % _shown(self.as_json())

    def as_json(self) -> dict[str, Any]:
        """What ``Alert.evidence["summary_text"]`` holds."""
        stored: dict[str, Any] = {"text": self.text, "params": self._plain()}
        words = sorted(name for name, v in self.params.items() if isinstance(v, StrEnum))
        phrases = sorted(name for name, v in self.params.items() if isinstance(v, Phrase))
        if words:
            stored["words"] = words
        if phrases:
            stored["phrases"] = phrases
        return stored

    def __str__(self) -> str:
        return self.english()


def summary(text: str, **params: Any) -> Summary:
    """``summary(N_("Door forced open: %(device)s"), device=name)``."""
    return Summary(text, params)


def _shown(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The values as the reader reads them: domain values in words, phrases translated."""
    params = dict(stored.get("params") or {})
    for name in stored.get("words") or ():
        if name in params:
            params[name] = word(params[name])
    for name in stored.get("phrases") or ():
        if isinstance(params.get(name), str):
            params[name] = _(params[name])
    return params


def display_summary(alert: Any) -> str:
    """An alert's summary in the request's language (the stored English for old rows)."""
    stored = (alert.evidence or {}).get(SUMMARY_KEY) if isinstance(alert.evidence, dict) else None
    if not isinstance(stored, dict) or not isinstance(stored.get("text"), str):
        return alert.summary
    try:
        shown = _(stored["text"]) % _shown(stored)
    except (KeyError, TypeError, ValueError):
        return alert.summary
    offline_at = stored.get(OFFLINE_AT_KEY)  # ``note_offline``: decided offline, uploaded late
    if isinstance(offline_at, str):
        return _(OFFLINE_NOTE) % {"summary": shown, "time": offline_at}
    return shown


# The device events that are alerts in themselves (``server.worker.ingest``).
DEVICE_EVENT_SUMMARIES: dict[AlertType, str] = {
    AlertType.PANIC: N_("Panic button pressed: %(device)s"),
    AlertType.DOOR_FORCED: N_("Door forced open: %(device)s"),
    AlertType.TAMPER: N_("Device tampered with: %(device)s"),
    AlertType.DOOR_HELD_OPEN: N_("Door held open: %(device)s"),
}


def device_event(alert_type: AlertType, device: str) -> Summary:
    """``Panic button pressed: Gate 1``."""
    return summary(DEVICE_EVENT_SUMMARIES[alert_type], device=device)


def device_offline(device: str, misses: int) -> Summary:
    return summary(
        N_("%(device)s offline: no heartbeat for %(misses)s intervals"),
        device=device,
        misses=misses,
    )


def blocked_plate(plate: str, place: str, reason: str) -> Summary:
    return summary(
        N_("Blocked plate %(plate)s at %(place)s: %(reason)s"),
        plate=plate,
        place=place,
        reason=reason,
    )


def overstay(plate: str, until: str) -> Summary:
    return summary(
        N_("Visitor car %(plate)s is still inside; its pass ended at %(time)s"),
        plate=plate,
        time=until,
    )


def offline_grant_refused(place: str, name: str | None, time: str, reason: Any) -> Summary:
    """A door let someone in offline whom the server would have refused (``reason``, a
    ``Reason``, shown in words)."""
    if name is None:
        return summary(
            N_(
                "%(place)s opened offline at %(time)s for a credential the server would have "
                "refused: %(reason)s"
            ),
            place=place,
            time=time,
            reason=reason,
        )
    return summary(
        N_(
            "%(place)s let %(name)s in offline at %(time)s; the server would have refused: "
            "%(reason)s"
        ),
        place=place,
        name=name,
        time=time,
        reason=reason,
    )


# An alert a rule raised or updated for an event a door decided offline and uploaded late.
OFFLINE_NOTE = N_("%(summary)s (decided offline at %(time)s, uploaded late)")
OFFLINE_AT_KEY = "offline_at"  # in ``summary_text``: the local time shown in the note


@dataclass(frozen=True)
class OfflineEvent:
    """The offline access event the alert rules are judging (``decided_offline``)."""

    event_id: str
    decided_at: datetime  # the door's ``ts``
    time: str  # the same, community-local, as the note shows it


_OFFLINE: ContextVar[OfflineEvent | None] = ContextVar("gk_offline_event", default=None)


@contextmanager
def decided_offline(event_id: str, decided_at: datetime, time: str) -> Iterator[None]:
    """While the rules judge an offline event: every alert they raise or update says so
    (``raise_alert`` calls ``note_offline`` before the channels hear of it)."""
    token = _OFFLINE.set(OfflineEvent(event_id, decided_at, time))
    try:
        yield
    finally:
        _OFFLINE.reset(token)


def note_offline(summary: str, evidence: dict[str, Any]) -> str:
    """``summary`` (English) with the offline note when an offline event is being judged;
    ``evidence`` gains ``offline_event_ids``, ``decided_offline_at`` and the note's time in
    its ``summary_text`` (for ``display_summary``). Unchanged otherwise."""
    offline = _OFFLINE.get()
    if offline is None:
        return summary
    evidence["offline_event_ids"] = [offline.event_id]  # raise_alert's merge grows the list
    evidence["decided_offline_at"] = offline.decided_at.isoformat()
    stored = evidence.get(SUMMARY_KEY)
    if isinstance(stored, dict):
        evidence[SUMMARY_KEY] = {**stored, OFFLINE_AT_KEY: offline.time}
    return OFFLINE_NOTE % {"summary": summary, "time": offline.time}
