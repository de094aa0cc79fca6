"""An alert's evidence bundle: one ZIP a police records system can keep and check later.

``build`` writes ``alert.json`` (the alert as docs/protocol.md section 5 sends it),
``events.json`` and ``events.csv`` (the events it names, oldest first), ``crops/<event>.jpg``
(the face crops still kept with them, decrypted), ``history.json`` (its steps), ``site.json``
(the community and the access point), ``site_plan.svg`` (when the community has a site plan:
the plan with the alert's spot in red, the picture inside it as a ``data:`` URI, so the file
stands alone) and ``manifest.json`` (every other file's name, size
and SHA-256, the alert, the community and when the bundle was made), then
``signature.json``: an Ed25519 signature of the manifest's exact bytes by the server's
signing key (the QR pass key ring, ``server.passes.keys``), with the key's id and public
key. ``verify_bundle`` is what a receiver runs: it needs only the ZIP and the public keys
it trusts (``GET /api/v1/alerts/bundle-keys``). docs/alerts.md says how.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from gatekeeper import passtokens
from hardware.messages import format_ts
from server.access import snapshots
from server.alerts.channels import alert_payload
from server.alerts.service import history_of
from server.community import siteplan
from server.community.plan_drawing import plan_svg
from server.core.crypto import DecryptionError
from server.extensions import db
from server.models import AccessEvent, AccessPoint, Alert, Building, Community, utcnow
from server.passes import keys as passkeys

FORMAT = "gatekeeper-evidence-bundle/1"
MANIFEST, SIGNATURE = "manifest.json", "signature.json"
EVENT_COLUMNS = (
    "id",
    "occurred_at",
    "access_point_id",
    "access_point",
    "device_id",
    "credential_type",
    "direction",
    "decision",
    "reason",
    "rule",
    "person_id",
    "pass_id",
    "plate",
    "crop",
)


class BundleError(Exception):
    """A bundle that does not verify: what is wrong, in words."""


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")


def _events(alert: Alert) -> list[AccessEvent]:
    ids = [str(e) for e in (alert.evidence or {}).get("event_ids", []) or []]
    if not ids:
        return []
    return list(
        db.session.scalars(
            select(AccessEvent)
            .where(AccessEvent.id.in_(ids), AccessEvent.community_id == alert.community_id)
            .order_by(AccessEvent.occurred_at, AccessEvent.id)
        )
    )


def _event_row(event: AccessEvent, points: Mapping[str, str], crop: str | None) -> dict[str, Any]:
    return {
        "id": event.id,
        "occurred_at": format_ts(event.occurred_at),
        "access_point_id": event.access_point_id,
        "access_point": points.get(event.access_point_id or ""),
        "device_id": event.device_id,
        "credential_type": event.credential_type.value,
        "direction": event.direction,
        "decision": event.decision.value,
        "reason": event.reason,
        "rule": event.rule,
        "person_id": event.person_id,
        "pass_id": event.pass_id,
        "plate": event.plate,
        "crop": crop,
    }


def _site(alert: Alert, community: Community) -> dict[str, Any]:
    point = db.session.get(AccessPoint, alert.access_point_id) if alert.access_point_id else None
    building = db.session.get(Building, point.building_id) if point and point.building_id else None
    return {
        "community": {"id": community.id, "name": community.name, "timezone": community.timezone},
        "access_point": None
        if point is None
        else {
            "id": point.id,
            "name": point.name,
            "kind": point.kind.value,
            "zone": point.zone.value,
            "building": building.name if building else None,
        },
    }


def _site_plan(alert: Alert, community: Community) -> bytes | None:
    """The site plan with the alert's spot, standing alone (None without a plan)."""
    meta, href = siteplan.plan_meta(community.id), siteplan.data_uri(community.id)
    if meta is None or href is None:
        return None
    picture = siteplan.plan_picture(community, href, (meta[0], meta[1]), [alert])
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + plan_svg(picture)).encode("utf-8")


def build(alert: Alert, now: datetime | None = None) -> bytes:
    """The ZIP of ``alert``'s evidence, signed (the caller has checked the scope)."""
    now = now or utcnow()
    community = db.session.get_one(Community, alert.community_id)
    events = _events(alert)
    point_ids = {e.access_point_id for e in events if e.access_point_id}
    points = dict(
        db.session.execute(
            select(AccessPoint.id, AccessPoint.name).where(AccessPoint.id.in_(point_ids))
        ).all()
    )
    files: dict[str, bytes] = {}
    rows = []
    for event in events:
        try:
            jpeg = snapshots.load(event)
        except DecryptionError:
            jpeg = None
        crop = f"crops/{event.id}.jpg" if jpeg else None
        if crop and jpeg:
            files[crop] = jpeg
        rows.append(_event_row(event, points, crop))
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=EVENT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    history = [{**step, "at": format_ts(step["at"])} for step in history_of(alert)]
    files = {
        "alert.json": _json(alert_payload(alert, "bundle")),
        "events.json": _json(rows),
        # With a byte order mark, so spreadsheet programs read the Chinese as UTF-8.
        "events.csv": ("\ufeff" + table.getvalue()).encode("utf-8"),
        "history.json": _json(history),
        "site.json": _json(_site(alert, community)),
        **files,
    }
    if (plan := _site_plan(alert, community)) is not None:
        files["site_plan.svg"] = plan
    manifest = _json(
        {
            "format": FORMAT,
            "alert_id": alert.id,
            "community_id": community.id,
            "community": community.name,
            "created_at": format_ts(now),
            "files": [
                {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                for name, data in sorted(files.items())
            ],
        }
    )
    key_id, private = passkeys.signing_key(now)
    signature = {
        "algorithm": "Ed25519",
        "signed_file": MANIFEST,
        "key_id": key_id,
        "public_key": base64.b64encode(passtokens.public_key_bytes(private)).decode(),
        "signature": base64.b64encode(private.sign(manifest)).decode(),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(MANIFEST, manifest)
        archive.writestr(SIGNATURE, _json(signature))
    return out.getvalue()


def verify_bundle(zip_bytes: bytes, public_keys: Mapping[int, bytes]) -> dict[str, Any]:
    """The manifest of a bundle whose signature verifies with one of ``public_keys`` (raw
    32-byte Ed25519 keys by key id) and whose every file matches it; ``BundleError``
    otherwise. The key in ``signature.json`` itself is not trusted."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(zip_bytes))
        contents = {name: archive.read(name) for name in archive.namelist()}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, KeyError) as error:
        raise BundleError(f"not a readable ZIP: {error}") from error
    try:
        manifest_bytes = contents.pop(MANIFEST)
        signature = json.loads(contents.pop(SIGNATURE))
        key = public_keys[int(signature["key_id"])]
        Ed25519PublicKey.from_public_bytes(key).verify(
            base64.b64decode(signature["signature"]), manifest_bytes
        )
        manifest = json.loads(manifest_bytes)
    except KeyError as error:
        raise BundleError(f"missing: {error}") from error
    except InvalidSignature as error:
        raise BundleError("the manifest's signature does not verify") from error
    except (ValueError, TypeError) as error:
        raise BundleError(f"malformed: {error}") from error
    listed = {entry["name"]: entry for entry in manifest["files"]}
    if set(listed) != set(contents):
        raise BundleError(f"files differ from the manifest: {sorted(set(listed) ^ set(contents))}")
    for name, data in contents.items():
        if hashlib.sha256(data).hexdigest() != listed[name]["sha256"]:
            raise BundleError(f"{name}: its SHA-256 differs from the manifest's")
    return manifest
