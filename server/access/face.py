"""The face path at the door: find the face, check it is real, search the gallery, decide.

The view has already authenticated the device (its ``Door``) and decoded the frame. Every
attempt becomes an access event (``server.access.decision.decide``), denials included; the
``Verdict``'s body carries the ``liveness`` summary for the terminal. An unknown
face keeps its encrypted template on the event and joins a stranger cluster
(``server.alerts.strangers``). Every face is also checked against the community's watchlist
(``server.alerts.watchlist``): a hit alerts the officers and, per entry, leaves the decision as
it is (the terminal's answer says nothing of it) or denies with reason ``watchlist``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from gatekeeper import faces, policy
from gatekeeper.vocabulary import CredentialType, Reason
from server.access import snapshots
from server.access.decision import Door, Presented, Verdict, decide, person_with_subject
from server.access.liveness import DepthUpload, Liveness, check_liveness
from server.alerts import strangers, watchlist
from server.community import settings as community_settings
from server.core import crypto
from server.people.galleries import galleries


def verify(
    door: Door, image: np.ndarray, depth_png: bytes | None, direction: str | None
) -> Verdict:
    """Decide on one frame from ``door``; the caller commits."""
    community = door.community
    settings = community_settings.effective(community.settings)
    depth = DepthUpload(depth_png, image) if depth_png is not None else None
    probe = faces.probe_face(image)  # the depth map is decoded meanwhile
    if not probe.ok:
        if depth is not None:
            depth.drop()
        verdict = decide(
            door,
            Presented(
                CredentialType.FACE,
                unknown_reason=Reason(probe.reason.value),
                unknown_rule=f"face.{probe.reason.value}",
                details={"faces": probe.face_count},
            ),
            direction=direction,
        )
        return _with_liveness(verdict, Liveness.not_checked("no single face to check"))

    liveness = check_liveness(image, probe.face, depth, requires_depth=door.point.requires_depth)
    # Every face captured, granted or not, live or not: the officer judges a photo held up.
    versions = door.face_versions  # read with the door (``DoorReader(face=True)``)
    hit = watchlist.check(
        community.id,
        probe.template,
        settings.face_tolerance,
        versions.watchlist if versions is not None else None,
    )
    # The event keeps the measurements behind the verdict; the terminal gets the summary.
    details: dict[str, Any] = {
        "liveness": {**liveness.as_json(), "measurements": liveness.measurements or {}}
    }
    person_id = None  # the resident the gallery found
    stranger = False  # an unknown face no resident is near: it joins a stranger cluster
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
            .gallery(community.id, versions.gallery if versions is not None else None)
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
            # "ambiguous" is near residents who look alike: not a stranger.
            stranger = match.reason in ("too_far", "empty")
            presented = Presented(
                CredentialType.FACE,
                unknown_reason=Reason.UNKNOWN_FACE,
                unknown_rule=f"face.{match.reason}",
                details=details,
                template_encrypted=crypto.encrypt(faces.template_to_bytes(probe.template)),
            )
        else:
            person_id = match.person_id
            details["template_id"] = match.template_id
            person, subject_rows = person_with_subject(match.person_id)  # one statement
            presented = Presented(
                CredentialType.FACE,
                person=person,
                subject_rows=subject_rows,
                credential=policy.CredentialView(kind=CredentialType.FACE),
                details=details,
            )
    denied_by_watchlist = hit is not None and not hit.door_opens
    if denied_by_watchlist:
        # Decided like an unknown person (no policy, no subject in the answer) ...
        presented = replace(
            presented,
            person=None,
            credential=None,
            unknown_reason=Reason.WATCHLIST,
            unknown_rule=watchlist.DENY_RULE,
        )
    verdict = decide(door, presented, direction=direction)
    event = verdict.event
    if denied_by_watchlist and person_id is not None:
        event.person_id = person_id  # ... but the event still says who it was
    # Unknown faces and watchlist hits keep their crop as the alert's evidence.
    evidence = presented.template_encrypted is not None or hit is not None
    if settings.keep_snapshots or (evidence and settings.keep_stranger_crops):
        snapshots.store(event, snapshots.face_crop_jpeg(image, probe.face.box))
    if hit is not None:
        watchlist.alert_hit(event, hit, live=liveness.passed)
    elif stranger:
        strangers.record_sighting(event, probe.template, community, settings)
    return _with_liveness(verdict, liveness)


def _with_liveness(verdict: Verdict, liveness: Liveness) -> Verdict:
    """The verdict whose body also tells the terminal the liveness summary."""
    return replace(verdict, body={**verdict.body, "liveness": liveness.as_json()})


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
