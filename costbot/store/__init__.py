"""The findings store: SQLite through sqlite-utils, one connection per operation (WAL, busy
timeout), schema by numbered migrations, and every status move written as an event.

Nothing is ever deleted: findings change status, scans and events only accumulate.
"""

from costbot.store.db import Store
from costbot.store.records import CachedPrice, Event, ScanRecord, StoredFinding, utcnow
from costbot.store.scans import SCANNER_ACTOR

__all__ = [
    "SCANNER_ACTOR",
    "CachedPrice",
    "Event",
    "ScanRecord",
    "Store",
    "StoredFinding",
    "utcnow",
]
