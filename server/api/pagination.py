"""Page-number pagination of SQL queries for flask-smorest's ``@blp.paginate()``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select

from server.extensions import db


def paginated(query: Select[Any], pagination_parameters: Any) -> list[Any]:
    """One page of ``query``; tells flask-smorest the total for the ``X-Pagination`` header."""
    counted = select(func.count()).select_from(query.order_by(None).subquery())
    pagination_parameters.item_count = db.session.scalar(counted)
    if pagination_parameters.first_item >= pagination_parameters.item_count:
        return []  # past the end; a huge ?page= would overflow the database's OFFSET
    page = query.limit(pagination_parameters.page_size).offset(pagination_parameters.first_item)
    return list(db.session.scalars(page))
