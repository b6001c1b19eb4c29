"""The Azure Retail Prices API (`GET /api/retail/prices`) as the Azure emulator serves it: an
OData `$filter` subset (`field eq 'value'`, `field eq true`, `contains(field, 'x')`, joined by
`and`), pages of 100 through `$skip` and an absolute `NextPageLink`.
"""

from __future__ import annotations

import copy
import re
import threading
import urllib.parse
from typing import Any

from costbot.emulators.azure_catalog import default_price_items

PAGE_SIZE = 100
_CLAUSE = re.compile(
    r"\s*(?:contains\(\s*(?P<cfield>\w+)\s*,\s*'(?P<cvalue>(?:[^']|'')*)'\s*\)"
    r"|(?P<field>\w+)\s+eq\s+(?:'(?P<value>(?:[^']|'')*)'|(?P<flag>true|false)))\s*",
    re.IGNORECASE,
)
_AND = re.compile(r"and\s+", re.IGNORECASE)


class FilterError(ValueError):
    """A `$filter` outside the supported subset."""


def parse_filter(text: str, fields: list[str]) -> list[tuple[str, str, Any]]:
    """`$filter` as (operator, item key, value) clauses; raises FilterError otherwise."""
    by_lower = {name.lower(): name for name in fields}
    clauses: list[tuple[str, str, Any]] = []
    position = 0
    while True:
        match = _CLAUSE.match(text, position)
        if match is None:
            raise FilterError(f"unsupported $filter at {text[position:]!r}")
        name = match["cfield"] or match["field"]
        if name.lower() not in by_lower:
            raise FilterError(f"unknown field {name!r} in $filter")
        key = by_lower[name.lower()]
        if match["cfield"]:
            clauses.append(("contains", key, match["cvalue"].replace("''", "'")))
        elif match["flag"]:
            clauses.append(("eq", key, match["flag"].lower() == "true"))
        else:
            clauses.append(("eq", key, match["value"].replace("''", "'")))
        position = match.end()
        if position == len(text):
            return clauses
        joined = _AND.match(text, position)
        if joined is None:
            raise FilterError(f"unsupported $filter at {text[position:]!r}")
        position = joined.end()


def _matches(item: dict[str, Any], clauses: list[tuple[str, str, Any]]) -> bool:
    for operator, key, value in clauses:
        actual = item.get(key)
        if operator == "contains":
            if not isinstance(actual, str) or value not in actual:
                return False
        elif actual != value:
            return False
    return True


class RetailPrices:
    """Thread-safe price items plus an optional scripted failure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items = default_price_items()
        self._failure: tuple[int, str] | None = None

    def add(self, item: dict[str, Any]) -> None:
        """Append one item (fields as the API returns them)."""
        with self._lock:
            self._items.append(copy.deepcopy(item))

    def fail(self, status: int, message: str) -> None:
        """Answer every later request with this status and message."""
        with self._lock:
            self._failure = (status, message)

    def answer(self, base_url: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
        """(status, JSON body) for one GET of the prices endpoint."""
        with self._lock:
            if self._failure is not None:
                return self._failure[0], _error("ServiceError", self._failure[1])
            items = list(self._items)
        currency = query.get("currencyCode", "USD").strip("'\"")
        if currency != "USD":
            return 400, _error("InvalidCurrency", f"the emulator prices in USD only: {currency}")
        try:
            skip = int(query.get("$skip", "0"))
            if skip < 0:
                raise ValueError(f"$skip must not be negative: {skip}")
            fields = sorted({key for item in items for key in item})
            clauses = parse_filter(query["$filter"], fields) if query.get("$filter") else []
        except ValueError as exc:
            return 400, _error("InvalidFilter", str(exc))
        chosen = [item for item in items if _matches(item, clauses)]
        page = chosen[skip : skip + PAGE_SIZE]
        next_link = None
        if skip + PAGE_SIZE < len(chosen):
            params = urllib.parse.urlencode({**query, "$skip": str(skip + PAGE_SIZE)})
            next_link = f"{base_url}{urllib.parse.quote(path)}?{params}"
        return 200, {
            "BillingCurrency": "USD",
            "CustomerEntityId": "Default",
            "CustomerEntityType": "Retail",
            "Items": copy.deepcopy(page),
            "NextPageLink": next_link,
            "Count": len(page),
        }


def _error(code: str, message: str) -> dict[str, Any]:
    return {"Error": {"Code": code, "Message": message}}
