"""How a door checks a visitor pass's QR code without the server (docs/devices.md).

The door holds its community's key set (the retained message on ``gk/v1/{community}/keys``)
and counts the uses it granted itself. ``check_pass_offline`` makes the checks in the
documented order and says what to do; the door opens and uploads a ``pass_used`` event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gatekeeper import passtokens
from gatekeeper.vocabulary import Decision, Reason
from hardware.messages import KeySetMessage


@dataclass(frozen=True)
class OfflineDecision:
    """A door's own decision on a code: the reason code the server would use, and why."""

    reason: Reason
    detail: str = ""
    claims: passtokens.Claims | None = None

    @property
    def granted(self) -> bool:
        return self.reason is Reason.VISITOR_PASS

    def answer(self, open_ms: int) -> dict[str, Any]:
        """A decision body shaped like the server's (docs/protocol.md section 3), marked offline."""
        body: dict[str, Any] = {
            "decision": (Decision.GRANT if self.granted else Decision.DENY).value,
            "reason": self.reason.value,
            "offline": True,
        }
        if self.granted:
            body["subject"] = {"kind": "visitor"}
            body["open_ms"] = open_ms
        else:
            body["detail"] = self.detail
        return body


def check_pass_offline(
    token: str,
    key_set: KeySetMessage | None,
    access_point_id: str | None,
    at: datetime,
    uses: Mapping[bytes, int],
) -> OfflineDecision:
    """Decide on ``token`` at the door's time ``at``; ``uses`` counts this door's grants by serial.

    In order: a key set is known; the signature checks with the key its ``kid`` names (a key
    still verifying at ``at``); it is a visitor pass (resident codes are online only); its
    community tag is the key set's; ``at`` is inside its window; the door's access point is
    on it; the door has granted it fewer than ``max_uses`` times.
    """
    if key_set is None:
        return OfflineDecision(Reason.PASS_INVALID, "no key set yet")
    if access_point_id is None:
        return OfflineDecision(Reason.NOT_AUTHORIZED_HERE, "no access point configured")
    try:
        claims = passtokens.verify(token, key_set.verifying_keys(at))
    except passtokens.TokenError as error:
        return OfflineDecision(Reason.PASS_INVALID, f"{error.problem.value}: {error.detail}")
    if claims.kind is not passtokens.TokenKind.PASS:
        return OfflineDecision(Reason.PASS_INVALID, "resident codes are checked online only")
    if claims.community_tag != key_set.community_tag:
        return OfflineDecision(Reason.PASS_INVALID, "a code of another community")
    window = claims.window_state(at)
    if window < 0:
        return OfflineDecision(Reason.PASS_INVALID, "the pass is not valid yet")
    if window > 0:
        return OfflineDecision(Reason.PASS_EXPIRED, "the pass has expired")
    if not claims.allows_access_point(access_point_id):
        return OfflineDecision(Reason.NOT_AUTHORIZED_HERE, "this door is not on the pass")
    if uses.get(claims.serial, 0) >= claims.max_uses:
        return OfflineDecision(Reason.PASS_USED_UP, "no uses left at this door")
    return OfflineDecision(Reason.VISITOR_PASS, claims=claims)
