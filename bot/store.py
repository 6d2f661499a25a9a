"""SQLite state of the bot: incidents, alerts, proposals, approvals, executions, audit, outbox.

One file in WAL mode (the scheduler's job store lives in the same file). Every thread gets its
own connection; anything that must be atomic runs in one ``BEGIN IMMEDIATE`` transaction. The
audit table is append-only: triggers refuse UPDATE and DELETE. Nothing secret is written:
``redact`` scrubs registered secret values and token-shaped strings from every text stored.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at REAL NOT NULL, updated_at REAL NOT NULL,
  platform TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT,
  requester TEXT NOT NULL DEFAULT '', source TEXT NOT NULL, target TEXT, text TEXT NOT NULL,
  status TEXT NOT NULL, fingerprint TEXT, summary TEXT NOT NULL DEFAULT '', diagnosis TEXT,
  cluster TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS alerts (
  fingerprint TEXT PRIMARY KEY, incident_id INTEGER NOT NULL, status TEXT NOT NULL,
  first_seen REAL NOT NULL, last_seen REAL NOT NULL, count INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS proposals (
  id TEXT PRIMARY KEY, incident_id INTEGER NOT NULL, hash TEXT NOT NULL, risk TEXT NOT NULL,
  title TEXT NOT NULL, body TEXT NOT NULL, platform TEXT NOT NULL, channel TEXT NOT NULL,
  thread TEXT, message_id TEXT, requester TEXT NOT NULL DEFAULT '', state TEXT NOT NULL,
  created_at REAL NOT NULL, expires_at REAL NOT NULL, decided_by TEXT, decided_at REAL
);
CREATE INDEX IF NOT EXISTS proposals_msg ON proposals(platform, channel, message_id);
CREATE TABLE IF NOT EXISTS approvals (
  id INTEGER PRIMARY KEY AUTOINCREMENT, proposal_id TEXT NOT NULL, hash TEXT NOT NULL,
  user TEXT NOT NULL, decision TEXT NOT NULL, outcome TEXT NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, proposal_id TEXT NOT NULL UNIQUE, approver TEXT NOT NULL,
  started_at REAL NOT NULL, finished_at REAL, state TEXT NOT NULL,
  ok INTEGER, verified INTEGER, result TEXT
);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, subject TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT ''
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, reply TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS snapshots (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL
);
"""

OPEN_STATES = ("open", "diagnosing", "proposed", "executing")
_TOKEN_RE = re.compile(r"\b(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|syt_[A-Za-z0-9_]+)")
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def add_column(conn: sqlite3.Connection, table: str, column: str, decl: str) -> None:
    """Add ``column`` to ``table`` when a state file from an older version lacks it."""
    have = {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})").fetchall()}
    if column not in have:
        try:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        except sqlite3.OperationalError as exc:  # another process added it meanwhile
            if "duplicate column" not in str(exc):
                raise


def register_secret(value: str) -> None:
    """Remember a secret value (a token from the environment) so it is never stored or logged."""
    if value and len(value) >= 6:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    out = _TOKEN_RE.sub("[redacted]", text)
    with _secrets_lock:
        for secret in _secrets:
            out = out.replace(secret, "[redacted]")
    return out


@dataclass(frozen=True)
class IncidentRow:
    id: int
    platform: str
    channel: str
    thread: str | None
    requester: str
    source: str
    target: str | None
    text: str
    status: str
    fingerprint: str | None
    summary: str
    created_at: float
    cluster: str = ""  # the cluster it is about ("" for a bot serving one unnamed cluster)


@dataclass(frozen=True)
class ProposalRow:
    id: str
    incident_id: int
    hash: str
    risk: str
    title: str
    body: dict[str, Any]
    platform: str
    channel: str
    thread: str | None
    message_id: str | None
    requester: str
    state: str
    created_at: float
    expires_at: float
    decided_by: str | None


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
        add_column(conn, "incidents", "cluster", "TEXT NOT NULL DEFAULT ''")  # state files before several clusters

    # -- plumbing ---------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, for bot modules that keep their own tables in the same file
        (bot.safeguards, bot.history, bot.fleet)."""
        return self._conn()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- audit -------------------------------------------------------------------------------
    def audit(self, actor: str, action: str, subject: str = "", detail: str | dict[str, Any] = "") -> None:
        text = detail if isinstance(detail, str) else json.dumps(detail, default=str, sort_keys=True)
        self._conn().execute(
            "INSERT INTO audit(at, actor, action, subject, detail) VALUES (?,?,?,?,?)",
            (time.time(), redact(actor), action, redact(subject), redact(text)),
        )

    def audit_log(self, action: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM audit" + (" WHERE action=?" if action else "") + " ORDER BY id"
        rows = self._conn().execute(sql, (action,) if action else ()).fetchall()
        return [dict(r) for r in rows]

    # -- incidents ---------------------------------------------------------------------------
    def create_incident(
        self,
        *,
        platform: str,
        channel: str,
        thread: str | None,
        requester: str,
        source: str,
        target: str | None,
        text: str,
        fingerprint: str | None = None,
        cluster: str = "",
    ) -> int:
        now = time.time()
        cur = self._conn().execute(
            "INSERT INTO incidents(created_at, updated_at, platform, channel, thread, requester, source,"
            " target, text, status, fingerprint, cluster) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (now, now, platform, channel, thread, requester, source, target, redact(text), "open", fingerprint,
             cluster),
        )
        return int(cur.lastrowid or 0)

    def open_alert_incident(
        self, fingerprint: str, *, platform: str, channel: str, source: str, target: str | None, text: str,
        cluster: str = "",
    ) -> tuple[int, bool]:
        """De-duplicate by fingerprint in one transaction: (incident id, created a new one?)."""
        now = time.time()
        with self.tx() as conn:
            row = conn.execute(
                "SELECT a.incident_id, i.status FROM alerts a JOIN incidents i ON i.id=a.incident_id"
                " WHERE a.fingerprint=?",
                (fingerprint,),
            ).fetchone()
            if row is not None and row["status"] in OPEN_STATES:
                conn.execute(
                    "UPDATE alerts SET count=count+1, last_seen=?, status='firing' WHERE fingerprint=?",
                    (now, fingerprint),
                )
                return int(row["incident_id"]), False
            cur = conn.execute(
                "INSERT INTO incidents(created_at, updated_at, platform, channel, thread, requester, source,"
                " target, text, status, fingerprint, cluster) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (now, now, platform, channel, None, "", source, target, redact(text), "open", fingerprint, cluster),
            )
            incident_id = int(cur.lastrowid or 0)
            conn.execute(
                "INSERT INTO alerts(fingerprint, incident_id, status, first_seen, last_seen, count)"
                " VALUES (?,?,?,?,?,1) ON CONFLICT(fingerprint) DO UPDATE SET incident_id=excluded.incident_id,"
                " status='firing', first_seen=excluded.first_seen, last_seen=excluded.last_seen, count=1",
                (fingerprint, incident_id, "firing", now, now),
            )
            return incident_id, True

    def resolve_alert(self, fingerprint: str) -> int | None:
        """Mark an alert resolved; returns its incident id when there was one."""
        with self.tx() as conn:
            row = conn.execute("SELECT incident_id FROM alerts WHERE fingerprint=?", (fingerprint,)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE alerts SET status='resolved', last_seen=? WHERE fingerprint=?", (time.time(), fingerprint))
            return int(row["incident_id"])

    def alert_count(self, fingerprint: str) -> int:
        row = self._conn().execute("SELECT count FROM alerts WHERE fingerprint=?", (fingerprint,)).fetchone()
        return int(row["count"]) if row else 0

    def set_incident(self, incident_id: int, **fields: Any) -> None:
        allowed = {"thread", "status", "summary", "diagnosis", "target"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown incident fields: {sorted(bad)}")
        if "diagnosis" in fields and not isinstance(fields["diagnosis"], str):
            fields["diagnosis"] = json.dumps(fields["diagnosis"], default=str)
        sets = ", ".join(f"{k}=?" for k in fields)
        self._conn().execute(
            f"UPDATE incidents SET {sets}, updated_at=? WHERE id=?", (*fields.values(), time.time(), incident_id)
        )

    def incident(self, incident_id: int) -> IncidentRow | None:
        row = self._conn().execute("SELECT * FROM incidents WHERE id=?", (incident_id,)).fetchone()
        return _incident(row) if row else None

    def incidents(self, status: str | None = None) -> list[IncidentRow]:
        sql = "SELECT * FROM incidents" + (" WHERE status=?" if status else "") + " ORDER BY id"
        return [_incident(r) for r in self._conn().execute(sql, (status,) if status else ()).fetchall()]

    def count_open_incidents(self) -> int:
        marks = ",".join("?" * len(OPEN_STATES))
        row = self._conn().execute(f"SELECT COUNT(*) FROM incidents WHERE status IN ({marks})", OPEN_STATES).fetchone()
        return int(row[0])

    def platform_of(self, channel: str) -> str | None:
        row = self._conn().execute("SELECT platform FROM incidents WHERE channel=? ORDER BY id DESC LIMIT 1",
                                   (channel,)).fetchone()
        return str(row["platform"]) if row else None

    def cluster_of(self, incident_id: int) -> str:
        """The cluster an incident is about ("" when unnamed or unknown)."""
        row = self._conn().execute("SELECT cluster FROM incidents WHERE id=?", (incident_id,)).fetchone()
        return str(row["cluster"] or "") if row else ""

    def diagnosis_json(self, incident_id: int) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT diagnosis FROM incidents WHERE id=?", (incident_id,)).fetchone()
        return json.loads(row["diagnosis"]) if row and row["diagnosis"] else None

    # -- proposals ---------------------------------------------------------------------------
    def add_proposal(
        self,
        *,
        proposal_id: str,
        incident_id: int,
        hash: str,
        risk: str,
        title: str,
        body: dict[str, Any],
        platform: str,
        channel: str,
        thread: str | None,
        requester: str,
        expires_at: float,
    ) -> None:
        self._conn().execute(
            "INSERT INTO proposals(id, incident_id, hash, risk, title, body, platform, channel, thread,"
            " requester, state, created_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                proposal_id, incident_id, hash, risk, title, json.dumps(body, default=str), platform,
                channel, thread, requester, "pending", time.time(), expires_at,
            ),
        )

    def bind_proposal_message(self, proposal_id: str, message_id: str) -> None:
        self._conn().execute("UPDATE proposals SET message_id=? WHERE id=?", (message_id, proposal_id))

    def proposal(self, proposal_id: str) -> ProposalRow | None:
        row = self._conn().execute("SELECT * FROM proposals WHERE id=?", (proposal_id,)).fetchone()
        return _proposal(row) if row else None

    def proposal_by_message(self, platform: str, channel: str, message_id: str) -> ProposalRow | None:
        row = self._conn().execute(
            "SELECT * FROM proposals WHERE platform=? AND channel=? AND message_id=?",
            (platform, channel, message_id),
        ).fetchone()
        return _proposal(row) if row else None

    def proposals(self, incident_id: int | None = None, state: str | None = None) -> list[ProposalRow]:
        clauses: list[str] = []
        args: list[Any] = []
        if incident_id is not None:
            clauses.append("incident_id=?")
            args.append(incident_id)
        if state is not None:
            clauses.append("state=?")
            args.append(state)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._conn().execute(f"SELECT * FROM proposals{where} ORDER BY created_at", args).fetchall()
        return [_proposal(r) for r in rows]

    def record_decision(self, proposal_id: str, hash: str, user: str, decision: str, outcome: str) -> None:
        self._conn().execute(
            "INSERT INTO approvals(proposal_id, hash, user, decision, outcome, at) VALUES (?,?,?,?,?,?)",
            (proposal_id, hash, user, decision, outcome, time.time()),
        )

    def approvals(self, proposal_id: str) -> list[dict[str, Any]]:
        rows = self._conn().execute("SELECT * FROM approvals WHERE proposal_id=? ORDER BY id", (proposal_id,))
        return [dict(r) for r in rows.fetchall()]

    def claim_for_execution(self, proposal_id: str, hash: str, approver: str, now: float | None = None) -> bool:
        """The exactly-once gate: only one caller ever moves a pending, unexpired proposal with this
        hash to ``executing`` (a conditional UPDATE inside one immediate transaction)."""
        now = time.time() if now is None else now
        with self.tx() as conn:
            return self.claim_in(conn, proposal_id, hash, approver, now)

    @staticmethod
    def claim_in(conn: sqlite3.Connection, proposal_id: str, hash: str, approver: str, now: float) -> bool:
        """``claim_for_execution`` inside a transaction the caller holds (so a caller can check more
        — the circuit breaker — and claim in one step)."""
        cur = conn.execute(
            "UPDATE proposals SET state='executing', decided_by=?, decided_at=?"
            " WHERE id=? AND state='pending' AND hash=? AND expires_at>?",
            (approver, now, proposal_id, hash, now),
        )
        if cur.rowcount != 1:
            return False
        # one fix per incident: the alternatives offered next to it can no longer be approved
        conn.execute(
            "UPDATE proposals SET state='superseded' WHERE state='pending' AND id<>? AND incident_id="
            "(SELECT incident_id FROM proposals WHERE id=?)",
            (proposal_id, proposal_id),
        )
        conn.execute(
            "INSERT INTO executions(proposal_id, approver, started_at, state) VALUES (?,?,?,'running')",
            (proposal_id, approver, now),
        )
        return True

    def reject(self, proposal_id: str, user: str) -> bool:
        cur = self._conn().execute(
            "UPDATE proposals SET state='rejected', decided_by=?, decided_at=? WHERE id=? AND state='pending'",
            (user, time.time(), proposal_id),
        )
        return cur.rowcount == 1

    def expire_due(self, now: float | None = None) -> list[ProposalRow]:
        now = time.time() if now is None else now
        with self.tx() as conn:
            rows = conn.execute(
                "SELECT * FROM proposals WHERE state='pending' AND expires_at<=?", (now,)
            ).fetchall()
            conn.execute("UPDATE proposals SET state='expired' WHERE state='pending' AND expires_at<=?", (now,))
        return [_proposal(r) for r in rows]

    def finish_execution(self, proposal_id: str, ok: bool, verified: bool, result: dict[str, Any]) -> None:
        with self.tx() as conn:
            conn.execute(
                "UPDATE executions SET state='done', finished_at=?, ok=?, verified=?, result=? WHERE proposal_id=?",
                (time.time(), int(ok), int(verified), redact(json.dumps(result, default=str)), proposal_id),
            )
            conn.execute(
                "UPDATE proposals SET state=? WHERE id=?", ("executed" if ok else "failed", proposal_id)
            )

    def execution(self, proposal_id: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT * FROM executions WHERE proposal_id=?", (proposal_id,)).fetchone()
        return dict(row) if row else None

    def executions(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn().execute("SELECT * FROM executions ORDER BY id").fetchall()]

    def mark_interrupted(self) -> list[ProposalRow]:
        """After a crash: executions still ``running`` are marked interrupted, never retried."""
        with self.tx() as conn:
            rows = conn.execute("SELECT * FROM proposals WHERE state='executing'").fetchall()
            conn.execute(
                "UPDATE executions SET state='interrupted', finished_at=? WHERE state='running'", (time.time(),)
            )
            conn.execute("UPDATE proposals SET state='interrupted' WHERE state='executing'")
        return [_proposal(r) for r in rows]

    def interrupt_diagnoses(self, before: float) -> list[IncidentRow]:
        """After a crash: incidents opened before ``before`` whose diagnosis never finished are
        marked interrupted (ones this process has opened since are left alone)."""
        where = "status IN ('open', 'diagnosing') AND created_at < ?"
        with self.tx() as conn:
            rows = conn.execute(f"SELECT * FROM incidents WHERE {where}", (before,)).fetchall()
            conn.execute(f"UPDATE incidents SET status='interrupted', updated_at=? WHERE {where}", (time.time(), before))
        return [_incident(r) for r in rows]

    # -- outbox (replies that could not be delivered yet) --------------------------------------
    def outbox_put(self, reply: dict[str, Any], error: str) -> None:
        self._conn().execute(
            "INSERT INTO outbox(created_at, reply, attempts, last_error) VALUES (?,?,1,?)",
            (time.time(), json.dumps(reply, default=str), redact(error)),
        )

    def outbox_items(self) -> list[tuple[int, dict[str, Any]]]:
        rows = self._conn().execute("SELECT id, reply FROM outbox ORDER BY id").fetchall()
        return [(int(r["id"]), json.loads(r["reply"])) for r in rows]

    def outbox_done(self, item_id: int) -> None:
        self._conn().execute("DELETE FROM outbox WHERE id=?", (item_id,))

    def outbox_failed(self, item_id: int, error: str) -> None:
        self._conn().execute(
            "UPDATE outbox SET attempts=attempts+1, last_error=? WHERE id=?", (redact(error), item_id)
        )

    # -- snapshots (health reports compare against yesterday's) --------------------------------
    def put_snapshot(self, kind: str, body: dict[str, Any]) -> None:
        self._conn().execute(
            "INSERT INTO snapshots(at, kind, body) VALUES (?,?,?)", (time.time(), kind, json.dumps(body, default=str))
        )

    def last_snapshot(self, kind: str) -> dict[str, Any] | None:
        row = self._conn().execute(
            "SELECT body FROM snapshots WHERE kind=? ORDER BY id DESC LIMIT 1", (kind,)
        ).fetchone()
        return json.loads(row["body"]) if row else None


def _incident(row: sqlite3.Row) -> IncidentRow:
    return IncidentRow(
        id=int(row["id"]), platform=row["platform"], channel=row["channel"], thread=row["thread"],
        requester=row["requester"], source=row["source"], target=row["target"], text=row["text"],
        status=row["status"], fingerprint=row["fingerprint"], summary=row["summary"],
        created_at=float(row["created_at"]), cluster=str(row["cluster"] or ""),
    )


def _proposal(row: sqlite3.Row) -> ProposalRow:
    return ProposalRow(
        id=row["id"], incident_id=int(row["incident_id"]), hash=row["hash"], risk=row["risk"],
        title=row["title"], body=json.loads(row["body"]), platform=row["platform"], channel=row["channel"],
        thread=row["thread"], message_id=row["message_id"], requester=row["requester"], state=row["state"],
        created_at=float(row["created_at"]), expires_at=float(row["expires_at"]), decided_by=row["decided_by"],
    )
