"""The data model. Importing this package registers every table on ``Base.metadata``."""

from server.models.accounts import ApiToken, ServiceHeartbeat, User, UserRole, user_communities
from server.models.activity import (
    AccessEvent,
    Alert,
    AlertHistory,
    AuditEntry,
    DeviceCommand,
    DeviceEvent,
    VisitorPass,
    pass_access_points,
)
from server.models.base import Base, utcnow
from server.models.community import AccessPoint, Building, Community, Device, Unit
from server.models.people import (
    Card,
    Consent,
    FaceTemplate,
    Lease,
    Membership,
    Person,
    PersonStatus,
    RfidTag,
    Vehicle,
    guardianships,
)

__all__ = [
    "AccessEvent",
    "AccessPoint",
    "Alert",
    "AlertHistory",
    "ApiToken",
    "AuditEntry",
    "Base",
    "Building",
    "Card",
    "Community",
    "Consent",
    "Device",
    "DeviceCommand",
    "DeviceEvent",
    "FaceTemplate",
    "Lease",
    "Membership",
    "Person",
    "PersonStatus",
    "RfidTag",
    "ServiceHeartbeat",
    "Unit",
    "User",
    "UserRole",
    "Vehicle",
    "VisitorPass",
    "guardianships",
    "pass_access_points",
    "user_communities",
    "utcnow",
]
