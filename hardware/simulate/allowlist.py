"""A door's offline allowlist, the reference client of docs/protocol.md section 6
("Allowlists" and "Offline decisions").

``AllowlistHolder`` is mixed into doors and barriers (``hardware.simulate.actuators``). It
subscribes to the device's ``allowlist`` (retained full list) and ``allowlist/delta`` topics,
verifies and applies each message with ``gatekeeper.offline_rules`` against the community's
key set, and asks ``GET /api/v1/devices/me/allowlist`` on start, after a gap, and when the
retained list fails to verify (a server that does not answer is tolerated). A face terminal
makes an X25519 key, keeps it, and registers it with ``PUT /api/v1/devices/me/allowlist-key``.

When a verification call gets no answer, a timeout or a ``5xx``, the door decides from the
list (``decide_offline``), opens or not, and records an ``offline_decision`` event. Events
wait in an outbox until the broker has acknowledged them (QoS 1); with a state directory
the outbox, the held list, the key set and the face key survive a restart.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gatekeeper import allowlist, offline_rules
from gatekeeper.offline_rules import Applied, HeldList, Outcome, Presented
from hardware.messages import MAX_PAYLOAD_BYTES, EventMessage, KeySetMessage, PayloadError
from hardware.protocol import EventType
from hardware.topics import allowlist_delta_topic, allowlist_topic

if TYPE_CHECKING:
    from hardware.simulate.verify import VerifyClient

_LOGGER = logging.getLogger(__name__)

ALLOWLIST_PATH = "/api/v1/devices/me/allowlist"
ALLOWLIST_KEY_PATH = "/api/v1/devices/me/allowlist-key"
MAX_LIST_BYTES = 16 * 1024 * 1024

HELD_FILE = "allowlist.json"
KEYS_FILE = "keys.json"
FACE_KEY_FILE = "allowlist_key"
OUTBOX_DIR = "outbox"


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a power cut leaves the old or the new file."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class DeviceApi:
    """The device's calls for its allowlist, with the verification client's identity."""

    def __init__(self, client: VerifyClient) -> None:
        self.client = client

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None):
        data = None if body is None else json.dumps(dict(body)).encode("utf-8")
        headers = {"Authorization": self.client.authorization, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(  # noqa: S310 (VerifyClient checked the scheme)
            self.client.base_url + path, data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=self.client.timeout_s) as response:  # noqa: S310
            return response.status, response.read(MAX_LIST_BYTES + 1)

    def fetch_allowlist(self, since: int | None = None) -> dict[str, Any] | None:
        """The current full list; None when ``since`` is current (``304``)."""
        path = ALLOWLIST_PATH if since is None else f"{ALLOWLIST_PATH}?since={since}"
        try:
            status, raw = self._call("GET", path)
        except urllib.error.HTTPError as error:
            if error.code == 304:
                return None
            raise
        if status == 304:
            return None
        if len(raw) > MAX_LIST_BYTES:
            raise ValueError("the allowlist answer is too large")
        body = json.loads(raw.decode("utf-8"))
        if not isinstance(body, dict):
            raise ValueError("the allowlist answer is not a JSON object")
        return body

    def register_key(self, public_key: bytes) -> None:
        """``PUT`` the face key (``204``)."""
        self._call("PUT", ALLOWLIST_KEY_PATH, {"public_key": allowlist.b64(public_key)})


class AllowlistHolder:
    """The allowlist part of a door or barrier (mixed into ``AccessPointDevice``).

    Expects the ``SimulatedDevice`` attributes: ``identity``, ``bus``, ``api``, ``clock``,
    ``sequence``, ``events``, ``_state``, ``_wire_now``, ``topics``, ``device_id``.
    """

    # Terminals that match faces themselves hold the faces of their list.
    matches_faces_locally = False

    def _init_allowlist(self, state_dir: str | Path | None) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.held_list: HeldList | None = None
        self.face_key: X25519PrivateKey | None = None
        self.allowlist_log: list[Applied] = []
        self._pending_full: dict[str, Any] | None = None  # a full list waiting for its keys
        self._outbox_lock = threading.RLock()
        self._outbox: dict[int, bytes] = {}  # seq -> event payload, until the broker has it
        self._in_flight: set[int] = set()
        self._sync_lock = threading.Lock()
        if self.state_dir is not None:
            (self.state_dir / OUTBOX_DIR).mkdir(parents=True, exist_ok=True)
            self._load_state()
        if self.matches_faces_locally and self.face_key is None:
            self.face_key = X25519PrivateKey.generate()
            if self.state_dir is not None:
                _write_atomically(
                    self.state_dir / FACE_KEY_FILE,
                    allowlist.b64(self.face_key.private_bytes_raw()).encode(),
                )
        community, device = self.identity.community_id, self.identity.device_id
        self.bus.subscribe(allowlist_topic(community, device), self._on_full_list)
        self.bus.subscribe(allowlist_delta_topic(community, device), self._on_delta)
        self.bus.add_connect_hook(self._publish_outbox)

    # storage --------------------------------------------------------------------------------

    def _load_state(self) -> None:
        if self.state_dir is None:
            return
        keys = self.state_dir / KEYS_FILE
        if keys.exists():
            try:
                self.key_set = KeySetMessage.decode(keys.read_bytes())
            except PayloadError as error:
                _LOGGER.warning("%s: stored key set unreadable (%s)", self.device_id, error)
        face = self.state_dir / FACE_KEY_FILE
        if face.exists():
            raw = allowlist.unb64(face.read_text().strip())
            self.face_key = X25519PrivateKey.from_private_bytes(raw)
        held = self.state_dir / HELD_FILE
        if held.exists():
            try:
                self.held_list = HeldList.from_state(json.loads(held.read_bytes()))
            except (ValueError, allowlist.AllowlistError) as error:
                _LOGGER.warning("%s: stored allowlist unreadable (%s)", self.device_id, error)
        for path in sorted((self.state_dir / OUTBOX_DIR).glob("*.json")):
            self._outbox[int(path.stem)] = path.read_bytes()
        for path in (self.state_dir / OUTBOX_DIR).glob("*.tmp"):
            path.unlink(missing_ok=True)  # cut off mid-write: never published

    def _store_key_set(self, payload: bytes) -> None:
        if self.state_dir is not None:
            _write_atomically(self.state_dir / KEYS_FILE, payload)

    def _store_held(self) -> None:
        if self.state_dir is not None and self.held_list is not None:
            data = json.dumps(self.held_list.to_state(), ensure_ascii=False).encode("utf-8")
            _write_atomically(self.state_dir / HELD_FILE, data)

    # the list ---------------------------------------------------------------------------------

    def _verifying_keys(self) -> dict[int, bytes]:
        key_set = self.key_set
        return key_set.verifying_keys(self.clock()) if key_set is not None else {}

    def apply_allowlist(self, message: Mapping[str, Any]) -> Applied:
        """Verify and apply one full list or delta; keep the result; say what happened."""
        with self._state:
            result = offline_rules.apply(
                self.held_list,
                message,
                self._verifying_keys(),
                community_id=self.identity.community_id,
                access_point_id=self.identity.access_point_id or "",
                device_id=self.identity.device_id,
                face_key=self.face_key,
            )
            self.allowlist_log.append(result)
            if result.outcome is Outcome.APPLIED:
                self.held_list = result.held
                if message.get("kind") == "full":
                    self._pending_full = None
                self._store_held()
            elif result.outcome is Outcome.REFUSED and message.get("kind") == "full":
                # Perhaps signed by a key this door does not know yet: tried again when a
                # key set arrives (under the same lock the key set is taken with).
                self._pending_full = dict(message)
            self._state.notify_all()
        log = _LOGGER.info if result.outcome is Outcome.APPLIED else _LOGGER.warning
        log("%s allowlist: %s (%s)", self.device_id, result.outcome.value, result.detail)
        return result

    @staticmethod
    def _decode(payload: bytes) -> dict[str, Any] | None:
        try:
            message = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        return message if isinstance(message, dict) else None

    def _on_full_list(self, _topic: str, payload: bytes) -> None:
        message = self._decode(payload)
        if message is None:
            _LOGGER.warning("%s: an allowlist that does not decode", self.device_id)
            return
        if self.apply_allowlist(message).outcome is Outcome.REFUSED:
            self._sync_in_background()

    def _on_delta(self, _topic: str, payload: bytes) -> None:
        message = self._decode(payload)
        if message is None:
            _LOGGER.warning("%s: an allowlist delta that does not decode", self.device_id)
            return
        if self.apply_allowlist(message).need_full_list:
            self._sync_in_background()

    def _key_set_changed(self, payload: bytes) -> None:
        """A new key set: keep it, and retry a full list that could not be verified before."""
        self._store_key_set(payload)
        with self._state:
            pending = self._pending_full
        if pending is not None:
            self.apply_allowlist(pending)

    def sync_allowlist(self) -> bool:
        """Ask the server for the current full list; False when it does not answer."""
        if self.api is None:
            return False
        with self._sync_lock:
            held = self.held_list
            try:
                message = DeviceApi(self.api).fetch_allowlist(
                    None if held is None else held.version
                )
            except (urllib.error.URLError, OSError, ValueError) as error:
                _LOGGER.info("%s: no allowlist from the server (%s)", self.device_id, error)
                return False
            if message is not None:
                self.apply_allowlist(message)
            return True

    def register_face_key(self) -> bool:
        """Register the face key with the server; False when it does not answer."""
        if self.api is None or self.face_key is None:
            return False
        public = self.face_key.public_key().public_bytes_raw()
        try:
            DeviceApi(self.api).register_key(public)
        except (urllib.error.URLError, OSError) as error:
            _LOGGER.info("%s: allowlist key not registered (%s)", self.device_id, error)
            return False
        return True

    def _sync_in_background(self, *, register: bool = False) -> None:
        if self.api is None:
            return

        def run() -> None:
            if register:
                self.register_face_key()
            self.sync_allowlist()

        threading.Thread(target=run, name=f"allowlist-{self.device_id}", daemon=True).start()

    # deciding ---------------------------------------------------------------------------------

    def decide_offline(
        self, presented: Presented, *, direction: str | None = None, **shown: str
    ) -> dict[str, Any]:
        """Decide from the held list, open on a grant, record ``offline_decision``.

        ``shown`` is what was presented as the event carries it (``card=`` or ``token=``).
        The answer looks like the server's (section 4) with ``"offline": true``.
        """
        with self._state:
            held = self.held_list
        verdict = offline_rules.decide(held, presented, self.clock())
        if verdict is None:
            detail = "no allowlist held" if held is None else "emergency release: the door is open"
            _LOGGER.info("%s offline: no decision (%s)", self.device_id, detail)
            return {"decision": None, "offline": True, "detail": detail}
        if verdict.granted and verdict.open_ms is not None:
            self._unlock(verdict.open_ms)
        fields: dict[str, Any] = {
            "credential": presented.credential,
            **shown,
            "pid": verdict.pid,
            "decision": verdict.decision.value,
            "reason": verdict.reason.value,
            "list_version": verdict.list_version,
        }
        if direction is not None:
            fields["direction"] = direction
        self.record(EventType.OFFLINE_DECISION, **fields)
        _LOGGER.info(
            "%s offline %s: %s %s",
            self.device_id,
            presented.credential,
            fields["decision"],
            fields["reason"],
        )
        answer: dict[str, Any] = {
            "decision": verdict.decision.value,
            "reason": verdict.reason.value,
            "offline": True,
            "list_version": verdict.list_version,
        }
        if verdict.granted:
            answer["open_ms"] = verdict.open_ms
            answer["subject"] = {"kind": "person", "id": verdict.pid}
        else:
            answer["detail"] = verdict.detail
        return answer

    # the outbox -------------------------------------------------------------------------------

    def record(self, event_type: EventType, **fields: Any) -> EventMessage:
        """An event kept until the broker acknowledges it: on disk with a state directory."""
        message = EventMessage(
            type=event_type, seq=self.sequence.next(), ts=self._wire_now(), fields=fields
        )
        payload = message.encode()
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ValueError("an event larger than a payload may be")
        with self._outbox_lock:
            if self.state_dir is not None:
                _write_atomically(self._outbox_path(message.seq), payload)
            self._outbox[message.seq] = payload
            self._in_flight.add(message.seq)
        self._send(message.seq, payload)
        with self._state:
            self.events.append(message)
            self._state.notify_all()
        return message

    @property
    def outbox(self) -> list[int]:
        """The ``seq`` of every event the broker has not acknowledged yet, in order."""
        with self._outbox_lock:
            return sorted(self._outbox)

    def _outbox_path(self, seq: int) -> Path:
        return Path(self.state_dir or ".") / OUTBOX_DIR / f"{seq:020d}.json"

    def _send(self, seq: int, payload: bytes) -> None:
        # Published at once, connected or not: the MQTT client holds QoS 1 messages while the
        # link is down. What an earlier power cycle left on disk goes out on connect. Never
        # under the outbox lock: the acknowledgement comes on the MQTT client's thread.
        self.bus.publish(self.topics["evt"], payload, qos=1, on_acked=lambda: self._acked(seq))

    def _acked(self, seq: int) -> None:
        with self._outbox_lock:
            self._in_flight.discard(seq)
            self._outbox.pop(seq, None)
            if self.state_dir is not None:
                self._outbox_path(seq).unlink(missing_ok=True)
        with self._state:
            self._state.notify_all()

    def _publish_outbox(self) -> None:
        with self._outbox_lock:
            waiting = [(seq, self._outbox[seq]) for seq in sorted(self._outbox)]
            waiting = [(seq, payload) for seq, payload in waiting if seq not in self._in_flight]
            self._in_flight.update(seq for seq, _payload in waiting)
        for seq, payload in waiting:
            self._send(seq, payload)
