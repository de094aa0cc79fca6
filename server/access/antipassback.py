"""Anti-passback at gate pairs: the verify path's hook, the pairs, and each person's state.

``check`` runs inside ``server.access.decision.decide`` for a granted person at an access
point of a pair, before the event is stored: it asks ``gatekeeper.antipassback`` and moves
the person's state in the same transaction (the row locked on PostgreSQL; SQLite serialises
writers), so two simultaneous entries by two credentials cannot both pass a hard pair. A
hard violation turns the grant into an ``anti_passback`` denial (no ``open`` follows); a
soft one is granted, flagged on the event's details and counted. Visitor passes and remote
opens are not counted (pairs are for persons). Staff make, change and remove pairs and reset
a person's state here, every change audited (``docs/policy.md``, Anti-passback).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any

from flask_babel import lazy_gettext as _l
from prometheus_client import Counter
from sqlalchemy import Select, bindparam, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gatekeeper import antipassback as rule
from gatekeeper import policy
from gatekeeper.vocabulary import CredentialType, Decision, Reason
from server.core import audit
from server.core.errors import Invalid
from server.core.scope import Scope
from server.extensions import db
from server.models import (
    AccessPoint,
    AntiPassbackPair,
    AntiPassbackState,
    Community,
    Person,
    Vehicle,
    utcnow,
)
from server.models.ids import new_id

VIOLATIONS = Counter(
    "gk_anti_passback_violations",
    "Entries through a gate pair by a person already inside, by the pair's mode (hard: denied "
    "anti_passback; soft: granted and recorded).",
    ["mode"],
)

# Credentials a pair does not count: a remote open is no one passing the door.
_NOT_COUNTED = frozenset({CredentialType.REMOTE})

_FIELDS = ("name", "entry_point_id", "exit_point_id", "mode", "forgive_minutes")


def rule_pair(pair: AntiPassbackPair) -> rule.Pair:
    return rule.Pair(
        entry_point_id=pair.entry_point_id,
        exit_point_id=pair.exit_point_id,
        mode=rule.PassbackMode(pair.mode),
        forgive_after=(
            timedelta(minutes=pair.forgive_minutes) if pair.forgive_minutes is not None else None
        ),
    )


def presence(state: AntiPassbackState | None) -> rule.Presence:
    if state is None or not state.inside:
        return rule.OUTSIDE
    return rule.Presence(inside=True, entered_at=state.entered_at)


# The verify path ------------------------------------------------------------------------------


def car_holder(presented: Any) -> Person | None:
    """The holder of the known car a plate camera let out (``server.access.plate`` presents
    such an exit as a decision with the vehicle's id, no person), so that it counts as their
    exit; None for anything else."""
    vehicle_id = (presented.details or {}).get("vehicle_id")
    if presented.person is not None or presented.credential_type is not CredentialType.PLATE:
        return None
    if vehicle_id is None or presented.visitor_pass is not None:
        return None
    vehicle = db.session.get(Vehicle, vehicle_id)
    return db.session.get(Person, vehicle.person_id) if vehicle is not None else None


@cache
def _pairs_statement() -> Select[Any]:
    """The pairs an access point is the entry or the exit of; built once (every grant asks)."""
    point_id = bindparam("point_id")
    return (
        select(AntiPassbackPair)
        .where(
            AntiPassbackPair.community_id == bindparam("community_id"),
            or_(
                AntiPassbackPair.entry_point_id == point_id,
                AntiPassbackPair.exit_point_id == point_id,
            ),
        )
        .order_by(AntiPassbackPair.id)
    )


def check(
    point: AccessPoint,
    person: Person,
    credential_type: CredentialType,
    direction: str | None,
    at: datetime,
    decision: policy.AccessDecision,
    details: dict[str, Any],
) -> policy.AccessDecision:
    """The decision after the pairs of ``point`` had their say on a granted ``person``;
    ``details`` (the event's) gains ``anti_passback`` when a pair saw a violation. Moves the
    person's state in each pair; the caller stores the event and commits."""
    if not decision.granted or credential_type in _NOT_COUNTED:
        return decision
    pairs = db.session.scalars(
        _pairs_statement(), {"community_id": point.community_id, "point_id": point.id}
    ).all()
    moves = []
    for pair in pairs:
        config = rule_pair(pair)
        step = rule.passage(config, point.id, direction)
        if step is None:
            continue
        state = _locked_state(pair, person.id)
        verdict = rule.judge(config, presence(state), step, at)
        if verdict.violation:
            VIOLATIONS.labels(pair.mode.value).inc()
            details["anti_passback"] = {
                "pair_id": pair.id,
                "mode": pair.mode.value,
                "violation": True,
                "entered_at": state.entered_at.isoformat() if state.entered_at else None,
            }
            if not verdict.allowed:
                return policy.AccessDecision(
                    Decision.DENY,
                    Reason.ANTI_PASSBACK,
                    policy.Rule.ANTI_PASSBACK,
                    f"entered through {pair.name} at {state.entered_at.isoformat()}"
                    if state.entered_at
                    else f"inside {pair.name}",
                )
            state.violations += 1
            state.last_violation_at = at
        moves.append((state, step, verdict))
    # Only a passage every pair allowed moves the person (a hard denial above moved none).
    for state, step, verdict in moves:
        state.inside = verdict.presence.inside
        if step is rule.Passage.ENTRY:
            state.entered_at = verdict.presence.entered_at
        else:
            state.exited_at = at
    return decision


def _locked_state(pair: AntiPassbackPair, person_id: str) -> AntiPassbackState:
    """The person's state in ``pair``, made (outside) when missing, locked for this
    transaction: two requests at once both make it at most once and then wait in turn."""
    dialect = db.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    db.session.execute(
        insert(AntiPassbackState.__table__)
        .values(
            id=new_id(AntiPassbackState.ID_PREFIX),
            community_id=pair.community_id,
            pair_id=pair.id,
            person_id=person_id,
            inside=False,
            violations=0,
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["pair_id", "person_id"])
    )
    return db.session.scalars(
        select(AntiPassbackState)
        .where(AntiPassbackState.pair_id == pair.id, AntiPassbackState.person_id == person_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


# Pairs ----------------------------------------------------------------------------------------


def _checked(community_id: str, data: dict[str, Any], pair: AntiPassbackPair | None) -> None:
    """``Invalid`` naming what is wrong with the pair as it would be after ``data``."""
    errors: dict[str, list[str]] = {}
    entry = data.get("entry_point_id", pair.entry_point_id if pair else None)
    exit_ = data.get("exit_point_id", pair.exit_point_id if pair else None)
    ids = {i for i in (entry, exit_) if i}
    found = set(
        db.session.scalars(
            select(AccessPoint.id).where(
                AccessPoint.community_id == community_id, AccessPoint.id.in_(ids)
            )
        )
    )
    for key, ident in (("entry_point_id", entry), ("exit_point_id", exit_)):
        if key in data and ident not in found:
            errors[key] = [str(_l("No access point %(id)s in this community.", id=repr(ident)))]
    directional = data.get("directional", pair is not None and entry == exit_)
    if entry == exit_ and not directional and "exit_point_id" not in errors:
        errors["exit_point_id"] = [
            str(
                _l(
                    "The entry and the exit are the same access point: set directional when "
                    "its devices tell entries from exits."
                )
            )
        ]
    elif entry != exit_ and data.get("directional"):
        errors["directional"] = [
            str(_l("Directional applies only to one access point used both ways."))
        ]
    if errors:
        raise Invalid(_l("The anti-passback pair is not valid."), errors=errors)


def pairs(scope: Scope, community_id: str) -> list[AntiPassbackPair]:
    community = scope.get(Community, community_id)
    scope.require_read(AntiPassbackPair)
    return list(
        db.session.scalars(
            scope.query(AntiPassbackPair)
            .where(AntiPassbackPair.community_id == community.id)
            .order_by(AntiPassbackPair.name, AntiPassbackPair.id)
        )
    )


def create(scope: Scope, community_id: str, data: dict[str, Any]) -> AntiPassbackPair:
    community = scope.get(Community, community_id)
    scope.require_read(AntiPassbackPair)
    scope.require_write(AntiPassbackPair)
    _checked(community.id, data, None)
    pair = AntiPassbackPair(community_id=community.id, **{k: data[k] for k in _FIELDS if k in data})
    db.session.add(pair)
    db.session.flush()
    audit.record(
        scope.user,
        "anti_passback_pair.create",
        community_id=community.id,
        target=pair,
        details={k: _plain(getattr(pair, k)) for k in _FIELDS},
    )
    return pair


def update(scope: Scope, pair_id: str, changes: dict[str, Any]) -> AntiPassbackPair:
    """Change a pair; people's states stay (a changed exit lets them out there from now)."""
    pair = scope.writable(AntiPassbackPair, pair_id)
    _checked(pair.community_id, changes, pair)
    details = {
        k: _plain(changes[k]) for k in _FIELDS if k in changes and changes[k] != getattr(pair, k)
    }
    for key in details:
        setattr(pair, key, changes[key])
    if details:
        audit.record(
            scope.user,
            "anti_passback_pair.update",
            community_id=pair.community_id,
            target=pair,
            details=details,
        )
    return pair


def delete(scope: Scope, pair_id: str) -> None:
    pair = scope.writable(AntiPassbackPair, pair_id)
    audit.record(
        scope.user,
        "anti_passback_pair.delete",
        community_id=pair.community_id,
        target=pair,
        details={"name": pair.name},
    )
    db.session.delete(pair)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, rule.PassbackMode) else value


# States ---------------------------------------------------------------------------------------


def inside(scope: Scope, pair_id: str) -> list[AntiPassbackState]:
    """Who entered through the pair and has not left (and was not forgiven or reset),
    most recent entry first."""
    pair = scope.get(AntiPassbackPair, pair_id)
    return list(
        db.session.scalars(
            scope.query(AntiPassbackState)
            .where(AntiPassbackState.pair_id == pair.id, AntiPassbackState.inside.is_(True))
            .order_by(AntiPassbackState.entered_at.desc(), AntiPassbackState.id)
        )
    )


def person_states(scope: Scope, person_id: str) -> list[AntiPassbackState]:
    person = scope.get(Person, person_id)
    return list(
        db.session.scalars(
            scope.query(AntiPassbackState)
            .where(AntiPassbackState.person_id == person.id)
            .order_by(AntiPassbackState.pair_id)
        )
    )


def reset(scope: Scope, person_id: str, pair_id: str | None = None) -> int:
    """Put the person outside in every pair (or in ``pair_id``), the violations count back to
    zero: how many states changed. Audited even when none did (staff did act)."""
    person = scope.get(Person, person_id)
    scope.require_write(AntiPassbackState)
    query = scope.query(AntiPassbackState).where(AntiPassbackState.person_id == person.id)
    if pair_id is not None:
        pair = scope.get(AntiPassbackPair, pair_id)
        if pair.community_id != person.community_id:
            raise Invalid(
                _l("The pair and the person are of different communities."),
                errors={"pair_id": [str(_l("Not a pair of the person's community."))]},
            )
        query = query.where(AntiPassbackState.pair_id == pair.id)
    states = db.session.scalars(query.with_for_update()).all()
    changed = [s for s in states if s.inside or s.violations]
    for state in changed:
        state.inside = False
        state.violations = 0
    audit.record(
        scope.user,
        "anti_passback.reset",
        community_id=person.community_id,
        target=person,
        details={"pair_id": pair_id, "pairs_reset": sorted(s.pair_id for s in changed)},
    )
    return len(changed)
