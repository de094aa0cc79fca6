"""The guest's page of a visitor pass: the QR code, when and where it works. No login.

The link's secret is the only key (``server.passes.service.share_secret``). The page
shows the guest's own name, the community, the validity in the community's time zone and
the doors; nothing about the resident who issued it (no name, unit or phone). It speaks the
guest's language (their choice or their browser's), else the community's default, else Chinese.
"""

from __future__ import annotations

from typing import Any

from flask import Response, render_template

from server.core import i18n
from server.extensions import db
from server.models import Community
from server.passes import images as qrimages
from server.passes import service as passes
from server.web import bp

# A link shared by chat must not leak through the Referer header, caches or search engines.
_PRIVATE = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


@bp.get("/g/<secret>")
def shared_pass(secret: str) -> Any:
    visitor_pass = passes.by_share_secret(secret)
    community = db.session.get(Community, visitor_pass.community_id)
    # Nobody is signed in: the guest's own choice or browser decides, else the community.
    i18n.use_community(community)
    status = passes.status_of(visitor_pass)
    body = render_template(
        "guest_pass.html",
        visitor_pass=visitor_pass,
        community=community,
        status=status,
        usable=status in passes.OPENS_DOORS,
        doors=sorted(p.name for p in visitor_pass.access_points),
        remaining=max(visitor_pass.max_uses - visitor_pass.uses, 0),
        secret=secret,
    )
    return Response(body, headers=_PRIVATE)


@bp.get("/g/<secret>/qr.png")
def shared_pass_qr(secret: str) -> Response:
    visitor_pass = passes.by_share_secret(secret)
    if passes.status_of(visitor_pass) not in passes.OPENS_DOORS:
        return Response(status=410, headers=_PRIVATE)
    token = passes.token_for(visitor_pass)
    db.session.commit()  # a first signing key may have been made
    return Response(qrimages.png(token), mimetype="image/png", headers=_PRIVATE)
