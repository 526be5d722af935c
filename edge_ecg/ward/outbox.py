"""A durable FHIR outbox: Observations wait in SQLite until the FHIR server has stored them.

    table outbox(id PRIMARY KEY, body, added, attempts, next_try, state, error)
        state 'pending'   waiting or being retried (next_try: when, epoch s)
              'delivered' the server answered 2xx to the PUT of this id
              'rejected'  the server refused the resource itself (4xx other than 408/429):
                          kept with the server's reason, never retried (a retry would fail
                          the same way and hold up the rest)

Each Observation has a deterministic id (bed + event), so a resource queued twice (a station
restart replaying events, a worker's failover) is one row, and a PUT resent after a lost
response updates the same resource on the server: none is stored twice. WAL journal with
synchronous=NORMAL: a committed row survives the station's crash (not necessarily a power
cut within the last checkpoint); a put is one transaction of a prediction's ~10 rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from edge_ecg.ward.errors import WardError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    added REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_try);
"""


class OutboxError(WardError):
    """The outbox database cannot be opened or written (disk full, another version's file)."""


class Outbox:
    def __init__(self, path: str | Path, max_pending: int = 2_000_000) -> None:
        self.path = Path(path)
        self.max_pending = max_pending
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=5.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise OutboxError(f"FHIR outbox {self.path}: {exc}; move the file aside to start "
                              "a new one (its undelivered Observations stay in it)") from None
        self.dropped = 0            # refused because the outbox was full (counted, shown)
        self._pending = self.count("pending")

    def put(self, resources: list[dict]) -> int:
        """Queue resources (each with an `id`); returns how many were new."""
        if not resources:
            return 0
        if self._pending + len(resources) > self.max_pending:
            self.dropped += len(resources)
            return 0
        now = time.time()
        rows = [(r["id"], json.dumps(r, separators=(",", ":"), allow_nan=False), now, now)
                for r in resources]
        try:
            cur = self.db.executemany("INSERT OR IGNORE INTO outbox(id, body, added, next_try) "
                                      "VALUES (?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            raise OutboxError(f"FHIR outbox {self.path}: {exc}") from None
        self._pending += cur.rowcount
        return cur.rowcount

    def due(self, limit: int, now: float | None = None) -> list[tuple[str, dict, int]]:
        """Pending resources whose retry time has come, oldest first: (id, resource, attempts)."""
        now = time.time() if now is None else now
        rows = self.db.execute("SELECT id, body, attempts FROM outbox WHERE state='pending' AND "
                               "next_try <= ? ORDER BY next_try, added LIMIT ?",
                               (now, limit)).fetchall()
        return [(i, json.loads(b), a) for i, b, a in rows]

    def next_due(self) -> float | None:
        row = self.db.execute("SELECT MIN(next_try) FROM outbox WHERE state='pending'").fetchone()
        return row[0]

    def delivered(self, rid: str) -> None:
        cur = self.db.execute("UPDATE outbox SET state='delivered', attempts=attempts+1, "
                              "error=NULL WHERE id=? AND state='pending'", (rid,))
        self._pending -= cur.rowcount

    def retry(self, rid: str, delay_s: float, error: str) -> None:
        self.db.execute("UPDATE outbox SET attempts=attempts+1, next_try=?, error=? WHERE id=?",
                        (time.time() + delay_s, error[:300], rid))

    def retry_all_now(self) -> int:
        """Every pending resource due now (the server is back: nothing waits out a backoff
        it earned while the server was away)."""
        cur = self.db.execute("UPDATE outbox SET next_try=? WHERE state='pending' AND "
                              "next_try > ?", (time.time(), time.time()))
        return cur.rowcount

    def rejected(self, rid: str, error: str) -> None:
        cur = self.db.execute("UPDATE outbox SET state='rejected', attempts=attempts+1, "
                              "error=? WHERE id=? AND state='pending'", (error[:300], rid))
        self._pending -= cur.rowcount

    def count(self, state: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM outbox WHERE state=?",
                               (state,)).fetchone()[0]

    def purge_delivered(self, older_than_s: float) -> int:
        """Forget delivered rows older than this (the ids only matter within a replay's
        reach; the outbox must not grow for ever)."""
        cur = self.db.execute("DELETE FROM outbox WHERE state='delivered' AND added < ?",
                              (time.time() - older_than_s,))
        return cur.rowcount

    @property
    def pending(self) -> int:
        return self._pending

    def close(self) -> None:
        self.db.close()
