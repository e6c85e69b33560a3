"""Helpers shared by the route modules: 1NCE-style filters, sorting and page headers."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..errors import bad_request


def parse_filters(q: str | None, allowed: Mapping[str, str], field: str = "q") -> dict[str, str]:
    """``"ip_address:10.0.0.1,imei:4711"`` → ``{column: value}``; ``allowed`` maps API name → column."""
    filters: dict[str, str] = {}
    if not q:
        return filters
    for part in q.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition(":")
        name = name.strip()
        if not sep or not value.strip():
            raise bad_request(f"{field}: {part!r} is not in the form filter:value", field)
        if name not in allowed:
            raise bad_request(f"{field}: cannot filter by {name!r}; filters: {', '.join(allowed)}", field)
        filters[allowed[name]] = value.strip()
    return filters


def parse_sort(sort: str | list[str] | None, allowed: Mapping[str, str], field: str = "sort") -> list[tuple[str, bool]]:
    """``"ip_address,-imei"`` → ``[(column, descending)]``."""
    if not sort:
        return []
    parts = sort if isinstance(sort, list) else sort.split(",")
    order: list[tuple[str, bool]] = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        descending = part.startswith("-")
        name = part.lstrip("+-")
        if name not in allowed:
            raise bad_request(f"{field}: cannot sort by {name!r}; keys: {', '.join(allowed)}", field)
        order.append((allowed[name], descending))
    return order


def page_offset(page: int, page_size: int, field: str = "page") -> int:
    """The row offset of a page; 400 naming ``page`` when it is beyond what the store can count
    (SQLite offsets are signed 64-bit)."""
    last = (2**63 - 1) // page_size
    if page > last:
        raise bad_request(f"{field}: must be at most {last} with pageSize {page_size}", field)
    return (page - 1) * page_size


def page_count(total: int, page_size: int) -> int:
    return max(1, math.ceil(total / page_size))


def paging_headers(total: int, page: int, page_size: int) -> dict[str, str]:
    return {"X-Total-Count": str(total), "X-Total-Pages": str(page_count(total, page_size)),
            "X-Current-Page": str(page), "X-Count-Per-Page": str(page_size)}
