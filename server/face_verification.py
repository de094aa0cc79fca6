"""The face path at the door: find the face, check it is real, search the gallery, decide.

The view has already authenticated the device and decoded the frame. Every attempt
becomes an access event (``server.verification.decide``), denials included; an unknown
face keeps its encrypted template on the event so strangers can be clustered later.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gatekeeper import faces, policy
from gatekeeper.vocabulary import CredentialType, Reason
from server import community_settings, crypto, snapshots
from server.extensions import db
from server.galleries import galleries
from server.liveness_check import Liveness, check_liveness
from server.models import AccessEvent, AccessPoint, Community, Device, Person
from server.verification import Presented, decide


def verify_face(
    device: Device, image: np.ndarray, depth_png: bytes | None, direction: str | None
) -> dict[str, Any]:
    """Decide on one frame from ``device``; the caller commits."""
    point = db.session.get(AccessPoint, device.access_point_id)
    community = db.session.get(Community, device.community_id)
    settings = community_settings.effective(community.settings)
    probe = faces.probe_face(image)
    if not probe.ok:
        answer = decide(
            device,
            Presented(
                CredentialType.FACE,
                unknown_reason=Reason(probe.reason.value),
                unknown_rule=f"face.{probe.reason.value}",
                details={"faces": probe.face_count},
            ),
            direction=direction,
        )
        answer["liveness"] = Liveness.not_checked("no single face to check").as_json()
        return answer

    liveness = check_liveness(image, probe.face, depth_png, requires_depth=point.requires_depth)
    # The event keeps the measurements behind the verdict; the terminal gets the summary.
    details: dict[str, Any] = {
        "liveness": {**liveness.as_json(), "measurements": liveness.measurements or {}}
    }
    if not liveness.passed:
        presented = Presented(
            CredentialType.FACE,
            unknown_reason=Reason.SPOOF_SUSPECTED,
            unknown_rule="face.liveness",
            details=details,
        )
    else:
        match = (
            galleries()
            .gallery(community.id)
            .search(probe.template, tolerance=settings.face_tolerance, margin=settings.face_margin)
        )
        details.update(
            distance=_round(match.distance),
            second_distance=_round(match.second_distance),
            tolerance=settings.face_tolerance,
            margin=settings.face_margin,
        )
        if match.person_id is None:
            details["match"] = match.reason
            presented = Presented(
                CredentialType.FACE,
                unknown_reason=Reason.UNKNOWN_FACE,
                unknown_rule=f"face.{match.reason}",
                details=details,
                template_encrypted=crypto.encrypt(faces.template_to_bytes(probe.template)),
            )
        else:
            details["template_id"] = match.template_id
            presented = Presented(
                CredentialType.FACE,
                person=db.session.get(Person, match.person_id),
                credential=policy.CredentialView(kind=CredentialType.FACE),
                details=details,
            )
    answer = decide(device, presented, direction=direction)
    if settings.keep_snapshots:
        event = db.session.get(AccessEvent, answer["event_id"])
        snapshots.store(event, snapshots.face_crop_jpeg(image, probe.face.box))
    answer["liveness"] = liveness.as_json()
    return answer


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
