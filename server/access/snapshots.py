"""Face crops of access events: kept only when the community says so, encrypted, and erased
after its retention days."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from flask import current_app
from PIL import Image
from sqlalchemy import select

from gatekeeper.faces import FaceBox
from server.alerts.evidence import held_event_ids
from server.community import settings as community_settings
from server.core import crypto
from server.extensions import db
from server.models import AccessEvent, Community, utcnow

# How much room around the face box the crop keeps (a face, not the whole frame).
CROP_PADDING = 0.25


def _root() -> Path:
    return current_app.config["SETTINGS"].instance_dir / "snapshots"


def face_crop_jpeg(image_rgb: np.ndarray, box: FaceBox) -> bytes:
    height, width = image_rgb.shape[:2]
    pad_x, pad_y = int(box.width * CROP_PADDING), int(box.height * CROP_PADDING)
    crop = image_rgb[
        max(0, box.top - pad_y) : min(height, box.bottom + pad_y),
        max(0, box.left - pad_x) : min(width, box.right + pad_x),
    ]
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def store(event: AccessEvent, jpeg: bytes) -> None:
    """Write the crop (encrypted with DATA_KEY) and point the event at it."""
    folder = _root() / event.community_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{event.id}.jpg.enc"
    path.write_bytes(crypto.encrypt(jpeg))
    event.snapshot_path = str(path.relative_to(_root()))


def load(event: AccessEvent) -> bytes | None:
    if not event.snapshot_path:
        return None
    path = _root() / event.snapshot_path
    return crypto.decrypt(path.read_bytes()) if path.exists() else None


def discard(snapshot_path: str) -> None:
    """Delete a crop's file (its event is being deleted); a missing file is no error."""
    (_root() / snapshot_path).unlink(missing_ok=True)


def erase_expired(now: datetime | None = None) -> int:
    """Erase crops older than each community's retention, held evidence excepted
    (``server.alerts.evidence``); return how many."""
    erased = 0
    now = now or utcnow()
    held = held_event_ids(now)
    for community in db.session.scalars(select(Community)):
        days = community_settings.effective(community.settings).snapshot_retention_days
        old = db.session.scalars(
            select(AccessEvent).where(
                AccessEvent.community_id == community.id,
                AccessEvent.snapshot_path.is_not(None),
                AccessEvent.occurred_at < now - timedelta(days=days),
                AccessEvent.id.not_in(held),
            )
        )
        for event in old:
            discard(event.snapshot_path)
            event.snapshot_path = None
            erased += 1
    return erased
