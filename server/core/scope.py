"""What each caller may see and change: the one place scope is enforced.

Views never filter by community themselves: they ask ``Scope`` for a query or a
row. Anything outside the caller's scope does not exist for them (404); things
they may see but not change answer 403. A whole family of rows a role never sees
(alerts for residents, the officers' records for staff and residents) answers 404 too,
never an empty list; a list a role may not read under a parent it sees (the people of
an officer's or a resident's community) answers 403.

- admin: everything.
- staff: everything in the communities they run.
- officer: reads in the communities they cover, but not visitor passes or webhooks; acts
  on their alerts (staff only read those); the only role (with admin) that sees and
  changes the watchlist and the stranger clusters.
- resident: their own community, building and unit; the access points of their building
  and the shared ones; their unit's visitor passes (which they issue and revoke) and
  the access events of their household and their guests.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, TypeVar

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from flask_babel.speaklater import LazyString
from sqlalchemy import ColumnElement, Select, false, or_, select, true

from gatekeeper.vocabulary import AlertType
from server.core.errors import Forbidden, NotFound
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    AccountActivation,
    Alert,
    AntiPassbackPair,
    AntiPassbackState,
    BlockedPlate,
    Building,
    Card,
    Community,
    Consent,
    CourierCode,
    Device,
    DoorMode,
    FaceTemplate,
    Holiday,
    IdCheck,
    Lease,
    Membership,
    ParkingTicket,
    PatrolRoute,
    Person,
    RegistrationLink,
    RegistrationRequest,
    RfidTag,
    StrangerCluster,
    StrangerSighting,
    Unit,
    User,
    UserRole,
    Vehicle,
    VisitorPass,
    WatchlistEntry,
    Webhook,
    WorkerPermit,
    user_communities,
)

M = TypeVar("M")

# Who may change rows of each model (within their visible scope).
_WRITERS: dict[type, frozenset[UserRole]] = {
    Community: frozenset({UserRole.ADMIN, UserRole.STAFF}),
    Building: frozenset({UserRole.ADMIN, UserRole.STAFF}),
    Unit: frozenset({UserRole.ADMIN, UserRole.STAFF}),
    AccessPoint: frozenset({UserRole.ADMIN, UserRole.STAFF}),
    Device: frozenset({UserRole.ADMIN, UserRole.STAFF}),
    User: frozenset({UserRole.ADMIN, UserRole.STAFF}),
}
_STAFF = frozenset({UserRole.ADMIN, UserRole.STAFF})
# Personal data only the property office sees: people, their documents and credentials.
# Officers and residents get 404 for these (residents will see their own unit's share
# through dedicated views, never these tables directly).
_PERSONAL: frozenset[type] = frozenset(
    {
        Person,
        Membership,
        Lease,
        Consent,
        FaceTemplate,
        Card,
        Vehicle,
        RfidTag,
        IdCheck,
        WorkerPermit,
        # Onboarding: what someone asked for and the links that let them in.
        RegistrationLink,
        RegistrationRequest,
        AccountActivation,
        # Anti-passback: the gate pairs and who is inside them.
        AntiPassbackPair,
        AntiPassbackState,
    }
)
_WRITERS.update(dict.fromkeys(_PERSONAL, _STAFF))
# Residents issue and revoke their own unit's visitor passes; officers never see them.
_WRITERS[VisitorPass] = frozenset({UserRole.ADMIN, UserRole.STAFF, UserRole.RESIDENT})
_HIDDEN_FROM_OFFICERS: frozenset[type] = frozenset({VisitorPass, Webhook})
_WRITERS[BlockedPlate] = _STAFF
# Courier codes: residents issue and revoke their unit's, staff any; officers never see them.
_WRITERS[CourierCode] = frozenset({UserRole.ADMIN, UserRole.STAFF, UserRole.RESIDENT})
_HIDDEN_FROM_OFFICERS = _HIDDEN_FROM_OFFICERS | {CourierCode}
_WRITERS[PatrolRoute] = _STAFF  # officers read the routes
_WRITERS[Holiday] = _STAFF  # the property office keeps the holiday calendar
# Officers work the alerts of the communities they cover (staff read them); the property
# office decides where a community's alerts are sent.
_WRITERS[Alert] = frozenset({UserRole.ADMIN, UserRole.OFFICER})
_WRITERS[Webhook] = _STAFF
# Officers' own records: a wanted person's file must not reach the property office, so
# staff and residents find none of these (404).
_OFFICERS_ONLY: frozenset[type] = frozenset({WatchlistEntry, StrangerCluster, StrangerSighting})
# Alerts only the police see: the property office must not learn who is watched for.
POLICE_ALERT_TYPES: frozenset[str] = frozenset({AlertType.STRANGER, AlertType.WATCHLIST_HIT})
_WRITERS.update(dict.fromkeys(_OFFICERS_ONLY, frozenset({UserRole.ADMIN, UserRole.OFFICER})))
# Lockdowns and emergency releases: staff, officers (and admins) start, lift and read them.
_WRITERS[DoorMode] = frozenset({UserRole.ADMIN, UserRole.STAFF, UserRole.OFFICER})
# Families a role never sees at all: their collections answer 404, as an id would, so a
# resident does not even learn that alerts exist (they are the officers' and staff's).
_UNSEEN: dict[UserRole, frozenset[type]] = {
    UserRole.STAFF: _OFFICERS_ONLY,
    UserRole.RESIDENT: _OFFICERS_ONLY | {Alert, DoorMode},
}
# Temporary cars' tickets: staff take the payments, officers read; residents find none.
_WRITERS[ParkingTicket] = _STAFF
_UNSEEN[UserRole.RESIDENT] = _UNSEEN[UserRole.RESIDENT] | {ParkingTicket}


class Scope:
    """The slice of the data one user may see."""

    def __init__(self, user: User):
        self.user = user
        self.role = user.role

    @cached_property
    def community_ids(self) -> frozenset[str]:
        """The ids of the communities this user sees (not the rows: an officer may cover
        thousands). Queries use ``_communities`` instead, a subquery the database joins."""
        if self.role is UserRole.RESIDENT:
            unit = self.user.unit
            return frozenset({unit.community_id} if unit else ())
        return frozenset(db.session.scalars(self._communities))

    @cached_property
    def _communities(self) -> Select[tuple[str]] | frozenset[str]:
        """What ``community_id IN (...)`` compares with: a resident's one community, else the
        user's rows of ``user_communities`` as a subquery, so a scope covering 2,500
        communities neither loads them nor sends 2,500 parameters with every query."""
        if self.role is UserRole.RESIDENT:
            return self.community_ids
        return select(user_communities.c.community_id).where(
            user_communities.c.user_id == self.user.id
        )

    @property
    def is_admin(self) -> bool:
        return self.role is UserRole.ADMIN

    # Reading ------------------------------------------------------------------------------

    def visible(self, model: type) -> ColumnElement[bool]:
        """A WHERE clause limiting ``model`` to what this user may see."""
        if self.is_admin:
            return true()
        if model is User:
            return self._visible_users()
        if model is Community:
            return Community.id.in_(self._communities)
        community_id = getattr(model, "community_id", None)
        if community_id is None or not self.reads(model):
            return false()
        in_communities = community_id.in_(self._communities)
        if self.role is UserRole.RESIDENT:
            return in_communities & self._resident_rows(model)
        if model is Alert and self.role is not UserRole.OFFICER:
            return in_communities & Alert.type.not_in(self.hidden_alert_types)
        return in_communities

    @property
    def hidden_alert_types(self) -> frozenset[str]:
        """Alert types this caller never sees (staff: the police's own)."""
        return (
            frozenset() if self.role in (UserRole.ADMIN, UserRole.OFFICER) else POLICE_ALERT_TYPES
        )

    def sees(self, model: type) -> bool:
        """False when no row of ``model`` exists for this role (officers' records for others,
        alerts for residents)."""
        return model not in _UNSEEN.get(self.role, frozenset())

    def require_sees(self, model: type) -> None:
        """``NotFound`` for a whole collection this role cannot see (not even empty)."""
        if not self.sees(model):
            raise NotFound(_l("No %(things)s here.", things=_plural(model)))

    def reads(self, model: type) -> bool:
        """False when this role reads no row of ``model`` in any community it sees: personal
        data for officers and residents, passes and webhooks for officers, and what it does
        not see at all (``sees``)."""
        if self.is_admin:
            return True
        if model in _PERSONAL and self.role not in _STAFF:
            return False
        if model in _HIDDEN_FROM_OFFICERS and self.role is UserRole.OFFICER:
            return False
        return self.sees(model)

    def require_read(self, model: type) -> None:
        """For a list under a parent the caller sees (a community's people): 404 when the
        family is hidden from this role (``require_sees``), 403 when it exists for them but
        is not theirs to read. Either beats an empty list, which would claim there is none."""
        self.require_sees(model)
        if not self.reads(model):
            raise Forbidden(
                _l(
                    "%(account)s cannot read %(things)s.",
                    account=_ACCOUNTS[self.role],
                    things=_plural(model),
                )
            )

    def _resident_rows(self, model: type) -> ColumnElement[bool]:
        unit = self.user.unit
        if unit is None:
            return false()
        if model is Unit:
            return Unit.id == unit.id
        if model is Building:
            return Building.id == unit.building_id
        if model is AccessPoint:  # the doors they use: their building's and the shared ones
            return (AccessPoint.building_id == unit.building_id) | AccessPoint.building_id.is_(None)
        if model is VisitorPass:
            return VisitorPass.unit_id == unit.id
        if model is CourierCode:
            return CourierCode.unit_id == unit.id
        if model is AccessEvent:  # their household's events and their guests'
            household = select(Membership.person_id).where(Membership.unit_id == unit.id)
            tenants = select(Lease.person_id).where(Lease.unit_id == unit.id)
            guests = select(VisitorPass.id).where(VisitorPass.unit_id == unit.id)
            return (
                AccessEvent.person_id.in_(household)
                | AccessEvent.person_id.in_(tenants)
                | AccessEvent.pass_id.in_(guests)
            )
        return false()

    def _visible_users(self) -> ColumnElement[bool]:
        if self.role is not UserRole.STAFF:
            return User.id == self.user.id
        same_community = select(user_communities.c.user_id).where(
            user_communities.c.community_id.in_(self._communities)
        )
        resident_here = select(Unit.id).where(Unit.community_id.in_(self._communities))
        return or_(User.id.in_(same_community), User.unit_id.in_(resident_here))

    def query(self, model: type[M]) -> Select[tuple[M]]:
        """``SELECT model`` limited to this user's scope."""
        return select(model).where(self.visible(model))

    def get(self, model: type[M], ident: Any) -> M:
        """The row with this id, or ``NotFound`` when it is missing or out of scope."""
        row = db.session.scalar(self.query(model).where(model.id == ident))  # type: ignore[attr-defined]
        if row is None:
            raise NotFound(_l("No %(thing)s with id %(id)s.", thing=_label(model), id=repr(ident)))
        return row

    # Changing -----------------------------------------------------------------------------

    def can_write(self, model: type) -> bool:
        return self.role in _WRITERS.get(model, frozenset())

    def require_write(self, model: type) -> None:
        if not self.can_write(model):
            raise Forbidden(
                _l(
                    "%(account)s cannot change %(things)s.",
                    account=_ACCOUNTS[self.role],
                    things=_plural(model),
                )
            )

    def writable(self, model: type[M], ident: Any) -> M:
        """The row, visible and changeable by this user (404 if invisible, 403 if read-only)."""
        row = self.get(model, ident)
        self.require_write(model)
        return row

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden(_l("Only an administrator can do this."))


# The caller's account in a refusal ("A staff account cannot change people.").
_ACCOUNTS: dict[UserRole, LazyString] = {
    UserRole.ADMIN: _l("An admin account"),
    UserRole.STAFF: _l("A staff account"),
    UserRole.RESIDENT: _l("A resident account"),
    UserRole.OFFICER: _l("An officer account"),
}

# What a row is called in a refusal, one and many ("No person with id ...", "No people
# here."); a model not listed is called by its class name.
_LABELS: dict[type, tuple[LazyString, LazyString]] = {
    AccessEvent: (_p("record", "access event"), _p("records", "access events")),
    AccessPoint: (_p("record", "access point"), _p("records", "access points")),
    Alert: (_p("record", "alert"), _p("records", "alerts")),
    BlockedPlate: (_p("record", "blocked plate"), _p("records", "blocked plates")),
    Building: (_p("record", "building"), _p("records", "buildings")),
    Card: (_p("record", "card"), _p("records", "cards")),
    Community: (_p("record", "community"), _p("records", "communities")),
    Consent: (_p("record", "consent"), _p("records", "consents")),
    CourierCode: (_p("record", "courier code"), _p("records", "courier codes")),
    Device: (_p("record", "device"), _p("records", "devices")),
    DoorMode: (_p("record", "lockdown or release"), _p("records", "lockdowns and releases")),
    FaceTemplate: (_p("record", "face"), _p("records", "faces")),
    IdCheck: (_p("record", "ID check"), _p("records", "ID checks")),
    Lease: (_p("record", "lease"), _p("records", "leases")),
    Membership: (_p("record", "membership"), _p("records", "memberships")),
    PatrolRoute: (_p("record", "patrol route"), _p("records", "patrol routes")),
    RegistrationLink: (_p("record", "invitation"), _p("records", "invitations")),
    RegistrationRequest: (_p("record", "registration"), _p("records", "registrations")),
    AccountActivation: (_p("record", "activation link"), _p("records", "activation links")),
    Person: (_p("record", "person"), _p("records", "people")),
    RfidTag: (_p("record", "RFID tag"), _p("records", "RFID tags")),
    StrangerCluster: (_p("record", "stranger"), _p("records", "strangers")),
    StrangerSighting: (_p("record", "stranger sighting"), _p("records", "stranger sightings")),
    Unit: (_p("record", "unit"), _p("records", "units")),
    User: (_p("record", "user"), _p("records", "users")),
    Vehicle: (_p("record", "vehicle"), _p("records", "vehicles")),
    VisitorPass: (_p("record", "visitor pass"), _p("records", "visitor passes")),
    WatchlistEntry: (_p("record", "watchlist entry"), _p("records", "watchlist entries")),
    Webhook: (_p("record", "webhook"), _p("records", "webhooks")),
    WorkerPermit: (_p("record", "worker permit"), _p("records", "worker permits")),
    Holiday: (_p("record", "holiday"), _p("records", "holidays")),
    AntiPassbackPair: (
        _p("record", "anti-passback pair"),
        _p("records", "anti-passback pairs"),
    ),
    AntiPassbackState: (
        _p("record", "anti-passback state"),
        _p("records", "anti-passback states"),
    ),
    ParkingTicket: (_p("record", "parking ticket"), _p("records", "parking tickets")),
}


def _label(model: type) -> LazyString | str:
    labels = _LABELS.get(model)
    return labels[0] if labels else model.__name__.lower()


def _plural(model: type) -> LazyString | str:
    labels = _LABELS.get(model)
    return labels[1] if labels else model.__name__.lower() + "s"
