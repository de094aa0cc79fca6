"""Pagination of SQL queries for flask-smorest's ``@blp.paginate()``: page numbers with a
bounded count, and keyset cursors for the lists that grow with history (alerts, events).

Page numbers (``?page=``, ``?page_size=``) work on every list. The ``X-Pagination`` header's
``total`` is counted, but never past ``COUNT_LIMIT`` rows beyond the page asked for: a list
longer than that says ``"total_capped": true``, its ``total`` is a lower bound and it has no
``last_page`` (``next_page`` is still right). Counting a city's history for every page would
cost more than the page.

The alert and event lists also take ``?after=<cursor>``: the rows that follow the row the
cursor names, in the list's order, read from an index wherever the list is (no ``OFFSET``,
no count). Their ``X-Pagination`` carries ``next_after``, the cursor of the page's last row,
while more rows follow; a page asked for with ``after`` has ``page_size`` and ``next_after``
only. A cursor is opaque text the server gave: the sort key of a row, base64url-encoded
JSON. Rows added at the head of the list meanwhile do not move the pages after a cursor.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar

import marshmallow as ma
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, select

from server.extensions import db

# Rows counted past the end of the page asked for, at most.
COUNT_LIMIT = 1000
CURSOR_MAX = 200


def paginated(query: Select[Any], pagination_parameters: Any) -> list[Any]:
    """One page of ``query``; tells flask-smorest the total (bounded) for ``X-Pagination``."""
    params = pagination_parameters
    _count(query, params)
    if params.first_item >= params.item_count:
        return []  # past the end; a huge ?page= would overflow the database's OFFSET
    page = query.limit(params.page_size).offset(params.first_item)
    return list(db.session.scalars(page))


def _count(query: Select[Any], params: Any) -> None:
    """``item_count`` and ``total_capped``: ``query``'s rows, counted up to ``COUNT_LIMIT``
    past the page asked for."""
    # A huge ?page= would overflow the database's LIMIT: no list is that long anyway.
    bound = min(params.first_item + params.page_size + COUNT_LIMIT, 2**62)
    bounded = query.order_by(None).limit(bound + 1).subquery()
    counted = db.session.scalar(select(func.count()).select_from(bounded)) or 0
    params.total_capped = counted > bound
    params.item_count = min(counted, bound)


def keyset_paginated(
    first_rows: Callable[[int], Sequence[Any]],
    rows_after: Callable[[tuple[Any, ...], int], Sequence[Any]],
    key: Callable[[Any], tuple[Any, ...]],
    offset_query: Callable[[], Select[Any]],
    after: tuple[Any, ...] | None,
    pagination_parameters: Any,
) -> list[Any]:
    """One page of a list with a keyset order.

    ``after``: the rows after that key (``rows_after(key, limit)``), uncounted. Otherwise the
    page number: the first page is ``first_rows(limit)``, a later one ``offset_query()`` with
    ``OFFSET`` (what an old client asks for); both are counted as ``paginated`` counts.
    Either way ``next_after`` names the page's last row when more rows follow.
    """
    params = pagination_parameters
    size = params.page_size
    if after is not None:
        params.keyset = True
        params.item_count = 0  # flask-smorest wants one; ``_set_pagination_metadata`` ignores it
        rows = list(rows_after(after, size + 1))
    elif params.page == 1:
        rows = list(first_rows(size + 1))
        if len(rows) <= size:  # the whole list is this page: no count needed
            params.item_count, params.total_capped = len(rows), False
        else:
            _count(offset_query(), params)
    else:
        query = offset_query()
        _count(query, params)
        if params.first_item >= params.item_count:
            return []
        rows = list(db.session.scalars(query.limit(size + 1).offset(params.first_item)))
    if len(rows) > size:
        rows = rows[:size]
        params.next_after = encode_cursor(key(rows[-1]))
    return rows


def pagination_metadata(params: Any) -> dict[str, Any]:
    """What ``X-Pagination`` says of ``params`` (see the module's docstring)."""
    meta: dict[str, Any] = {}
    next_after = getattr(params, "next_after", None)
    if getattr(params, "keyset", False):
        meta["page_size"] = params.page_size
    else:
        total, page, size = params.item_count, params.page, params.page_size
        meta["total"] = total
        capped = getattr(params, "total_capped", False)
        if capped:
            meta["total_capped"] = True
        elif total == 0:
            meta["total_pages"] = 0
        if total:
            pages = (total - 1) // size + 1
            meta["first_page"] = 1
            if not capped:
                meta["total_pages"] = meta["last_page"] = pages
            if page <= pages:
                meta["page"] = page
                if page > 1:
                    meta["previous_page"] = page - 1
                if page < pages or capped:
                    meta["next_page"] = page + 1
    if next_after:
        meta["next_after"] = next_after
    return meta


# Cursors ----------------------------------------------------------------------------------------


def encode_cursor(key: tuple[Any, ...]) -> str:
    """A row's sort key as opaque URL-safe text (datetimes as ISO 8601)."""
    values = [{"t": v.isoformat()} if isinstance(v, datetime) else v for v in key]
    text = json.dumps(values, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, ...]:
    """The sort key ``encode_cursor`` wrote; ``ValueError`` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise ValueError(cursor) from error
    if not isinstance(values, list):
        raise ValueError(cursor)
    key = []
    for value in values:
        if isinstance(value, dict):
            stamp = datetime.fromisoformat(value["t"]) if set(value) == {"t"} else None
            if stamp is None or stamp.tzinfo is None:
                raise ValueError(cursor)
            key.append(stamp)
        else:
            key.append(value)
    return tuple(key)


class Cursor(ma.fields.Str):
    """``?after=``: a cursor this list gave, loaded as its key; its shape (``kinds``: the type
    of each value) is checked, so the queries get what they compare with."""

    default_error_messages: ClassVar[dict[str, Any]] = {
        "cursor": _l("Not a cursor this list gave (next_after).")
    }

    def __init__(self, *kinds: type, **kwargs: Any):
        metadata = kwargs.setdefault("metadata", {})
        metadata.setdefault(
            "description",
            "the rows after this cursor: `next_after` of the previous page's `X-Pagination` "
            "(keyset pagination; `page` is then ignored and nothing is counted)",
        )
        metadata.setdefault("pattern", "^[A-Za-z0-9_-]+$")
        metadata.setdefault("maxLength", CURSOR_MAX)
        super().__init__(**kwargs)
        self.kinds = kinds

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text or len(text) > CURSOR_MAX:
            raise self.make_error("cursor")
        try:
            key = decode_cursor(text)
        except (ValueError, KeyError, TypeError) as error:
            raise self.make_error("cursor") from error
        if len(key) != len(self.kinds) or not all(
            isinstance(v, kind) and not (kind is int and isinstance(v, bool))
            for v, kind in zip(key, self.kinds, strict=True)
        ):
            raise self.make_error("cursor")
        return key
