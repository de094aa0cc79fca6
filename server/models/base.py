"""Declarative base, naming convention, and the column types every model shares."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Enum, ForeignKey, MetaData, String, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, registry

from server.models.ids import new_id

# Alembic needs stable constraint names to alter them later (SQLite batch mode above all).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    Naive datetimes are refused on the way in: a local time without a zone is a
    bug waiting for the first DST-using community.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: give it a time zone")
        value = value.astimezone(UTC)
        # SQLite has no zone-aware type; store the UTC wall time.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def enum_column(enum_type: type[enum.Enum], **kwargs: Any) -> Any:
    """A column holding a ``StrEnum`` by value, checked by the database."""
    return mapped_column(
        Enum(
            enum_type,
            values_callable=lambda e: [m.value for m in e],
            native_enum=False,
            create_constraint=True,
            length=32,
            name=enum_type.__name__.lower(),
        ),
        **kwargs,
    )


class Base(DeclarativeBase):
    """Base of every model."""

    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={
            datetime: UTCDateTime(),
            dict[str, Any]: JSON(),
            list[Any]: JSON(),
        },
    )


class IdMixin:
    """A string primary key with a type prefix (``ID_PREFIX``)."""

    ID_PREFIX: ClassVar[str]

    @declared_attr
    def id(cls) -> Mapped[str]:  # noqa: N805 - declared_attr receives the class
        prefix = cls.ID_PREFIX
        return mapped_column(String(40), primary_key=True, default=lambda: new_id(prefix))


class TimestampMixin:
    """``created_at`` and ``updated_at``, both UTC."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CommunityOwned:
    """A row that belongs to one community: isolation key and future shard key."""

    @declared_attr
    def community_id(cls) -> Mapped[str]:  # noqa: N805
        return mapped_column(
            String(40), ForeignKey("communities.id", ondelete="CASCADE"), index=True
        )
