"""One owner per store and per host id, and a store that does not vanish silently.

* **SQLite**: a gateway holds ``flock(LOCK_EX)`` on ``<database>.lock`` beside the
  database for as long as it runs. The kernel drops the lock when the process
  dies, however it dies (``kill -9`` included), so a lock that can be taken proves
  that no gateway is using the file. The file holds the holder's pid, machine and
  start time, for the refusal message of the next one.
* **PostgreSQL**: a session advisory lock keyed on the ``host_id``, held on a
  connection of its own. Chosen over a heartbeat row because the server drops it
  the moment the holder's session ends (a killed process closes its socket; a
  vanished machine is noticed by TCP keepalives, set short on that session), with
  no clock to compare between hosts, no TTL to wait out before recovery, and no
  write every few seconds. What it cannot see is a host whose lock connection
  broke while its process lives on; so recovery of another host's claims needs
  both proofs: its lock is free *and* the claim's own lease (renewed by the
  sending host through its ordinary connections) has run out. A host that finds
  its own lock lost takes it again, or stops if another process took its host id.
  The holding session's ``application_name`` (``gsmgw <pid>@<machine>``) and
  ``backend_start`` say who holds a host id. Session advisory locks do not survive
  a transaction-mode pooler (PgBouncer ``pool_mode = transaction``): connect the
  gateways to PostgreSQL directly or through a session-mode pool.
* **Expected store**: a folder that held a gateway's SQLite store keeps a marker
  (``.gsmgw-stores``, the database file names, one per line). A start that finds
  the marker but not the file refuses instead of creating an empty database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from gsmgw.errors import StoreError, StoreInUse, StoreMissing

log = logging.getLogger(__name__)

MARKER_NAME = ".gsmgw-stores"
# pg_advisory_lock(int4, int4): the first key marks the lock as a gsmgw host lease
# ('gsmg' in ASCII), the second is a hash of the host id.
PG_LOCK_NAMESPACE = 0x67736D67
# A dead machine's lease is freed after about idle + interval * count seconds.
PG_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
# Below this much free space the store is reported unwritable soon (degraded).
LOW_DISK_BYTES = 16 * 1024 * 1024


def sqlite_path(url: str) -> Path | None:
    """The absolute database file of a SQLite URL; None for other databases or memory."""
    try:
        u = make_url(url)
    except ArgumentError:
        return None
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database).expanduser().absolute()


def is_postgres(url: str) -> bool:
    try:
        return make_url(url).get_backend_name() == "postgresql"
    except ArgumentError:
        return False


def absolute_url(url: str) -> str:
    """A command-line URL with a relative SQLite path made absolute (for messages and locks)."""
    path = sqlite_path(url)
    if path is None:
        return url
    return make_url(url).set(database=str(path)).render_as_string(hide_password=False)


def host_lock_key(host_id: str) -> int:
    """The second advisory-lock key of a host id (31 bits: pg_locks.objid is unsigned)."""
    return int.from_bytes(hashlib.sha256(host_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


def _since(ts: float | dt.datetime | None) -> str:
    if ts is None:
        return "an unknown time"
    when = ts if isinstance(ts, dt.datetime) else dt.datetime.fromtimestamp(ts, dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --- expected stores (the marker) -------------------------------------------------------


def _marker(folder: Path) -> Path:
    return folder / MARKER_NAME


def known_stores(folder: Path) -> list[str]:
    """Database file names a gateway created or opened in ``folder``."""
    try:
        lines = _marker(folder).read_text().splitlines()
    except OSError:
        return []
    return [n.strip() for n in lines if n.strip()]


def remember_store(url: str) -> None:
    """Note in the folder's marker that this SQLite store exists (after it was opened)."""
    path = sqlite_path(url)
    if path is None:
        return
    names = known_stores(path.parent)
    if path.name in names:
        return
    marker = _marker(path.parent)
    try:
        with marker.open("a") as f:
            f.write(path.name + "\n")
    except OSError as exc:  # a read-only folder: the store itself will complain louder
        log.warning("cannot write %s: %s", marker, exc.strerror or exc)


def check_expected(url: str, *, create: bool, hint: str = "") -> None:
    """Refuse to open a SQLite store whose file is missing when that is a mistake.

    Missing folder: always refused (a typo, or a state folder not made yet).
    Missing file in a folder whose marker names it: it was removed; refused unless
    ``create``. Missing file in a folder that holds other stores: probably a
    mistyped name; refused unless ``create``. A folder without a marker and without
    the file is a first run: allowed (``create`` or not) and the store is created.
    ``hint`` is how to create it anyway, for the message.
    """
    path = sqlite_path(url)
    if path is None or path.exists():
        return
    how = hint or "gsmgw store init --url sqlite:///" + str(path)
    if not path.parent.is_dir():
        raise StoreMissing(f"the folder of the store {path} does not exist: fix [store] url, "
                           f"or create the folder for the gateway's user (sudo install -d -o gsmgw {path.parent})")
    if create:
        return
    known = known_stores(path.parent)
    if path.name in known:
        raise StoreMissing(f"the store {path} is gone (a gateway used it; {path.parent / MARKER_NAME} says so): "
                           f"restore it from a backup, or start an empty one with `{how}`")
    others = [n for n in known if (path.parent / n).exists()]
    if others:
        raise StoreMissing(f"no store {path}, but its folder holds {', '.join(others)}: fix [store] url "
                           f"(a typo?), or create a new empty store with `{how}`")


# --- SQLite: an flock beside the database ----------------------------------------------------


def _lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


def _read_holder(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_holder(info: dict[str, Any]) -> str:
    pid = info.get("pid", "?")
    machine = info.get("machine", "?")
    what = info.get("command") or "gsmgw"
    return f"{what} (pid {pid} on {machine}, since {_since(info.get('started_at'))})"


class SqliteLock:
    """The exclusive ``flock`` of one SQLite store, held by a running gateway."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.path = _lock_path(db)
        self._fd: int | None = None
        self._lock_ident: tuple[int, int] | None = None
        self._db_ident: tuple[int, int] | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, command: str, host_id: str) -> None:
        """Take the lock or raise :class:`StoreInUse` naming the holder."""
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {self.path}: {exc.strerror or exc}: "
                             f"the gateway's user must be able to write to {self.path.parent}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
            holder = describe_holder(_read_holder(self.path))
            raise StoreInUse(f"the store {self.db} is in use by {holder}: stop that gateway first, "
                             "or give this one another store", holder) from None
        info = {"pid": os.getpid(), "machine": socket.gethostname(), "host_id": host_id,
                "command": command, "started_at": dt.datetime.now(dt.UTC).timestamp()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        st = os.fstat(fd)
        self._fd = fd
        self._lock_ident = (st.st_dev, st.st_ino)

    def note_database(self) -> None:
        """Record the database file's identity (after it was created/migrated)."""
        with contextlib.suppress(OSError):
            st = os.stat(self.db)
            self._db_ident = (st.st_dev, st.st_ino)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # nobody holds it now: no stale pid for the next reader
        os.close(fd)  # closing the descriptor drops the flock

    def problem(self) -> str | None:
        """Why this store can no longer be trusted (file removed/replaced, lock file gone), or None."""
        try:
            st = os.stat(self.db)
        except FileNotFoundError:
            return (f"the store {self.db} was removed while the gateway was running: new messages are "
                    "refused; restore it (or stop the gateway, which then refuses to start without it)")
        except OSError as exc:
            return f"the store {self.db} cannot be read: {exc.strerror or exc}"
        if self._db_ident is not None and (st.st_dev, st.st_ino) != self._db_ident:
            return (f"the store {self.db} was replaced by another file while the gateway was running: "
                    "new messages are refused; restart the gateway to use the new file")
        if self._fd is not None:
            try:
                lst = os.stat(self.path)
            except OSError:
                lst = None
            if lst is None or (lst.st_dev, lst.st_ino) != self._lock_ident:
                return (f"the lock file {self.path} was removed or replaced: a second gateway could now "
                        "open this store; restart this gateway")
        if not os.access(self.db, os.W_OK) or not os.access(self.db.parent, os.W_OK | os.X_OK):
            return f"the store {self.db} (or its folder) is not writable by this user"
        return None

    def warning(self) -> str | None:
        """Trouble ahead (little disk space left), or None."""
        try:
            free = shutil.disk_usage(self.db.parent).free
        except OSError:
            return None
        if free < LOW_DISK_BYTES:
            return f"only {free // 1024} KiB free for the store in {self.db.parent}"
        return None


def sqlite_holder(db: Path) -> str | None:
    """Who holds a SQLite store now (for ``store migrate``/``copy``), or None if nobody."""
    path = _lock_path(db)
    if not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return describe_holder(_read_holder(path))
    finally:
        os.close(fd)
    return None


# --- PostgreSQL: a session advisory lock per host id ---------------------------------------


_HOLDERS_SQL = """
SELECT l.objid AS key, a.pid, a.application_name, a.backend_start, host(a.client_addr) AS client
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :ns AND l.objsubid = 2
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _pg_holders(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(text(_HOLDERS_SQL), {"ns": PG_LOCK_NAMESPACE})]


def live_hosts(conn: Connection, hosts: Iterable[str]) -> set[str]:
    """Which of ``hosts`` hold their liveness lease on this PostgreSQL database now."""
    wanted = {h: host_lock_key(h) for h in set(hosts)}
    if not wanted:
        return set()
    held = {int(r["key"]) for r in _pg_holders(conn)}
    return {h for h, k in wanted.items() if k in held}


def _describe_pg(row: dict[str, Any] | None, host_id: str) -> str:
    if row is None:
        return f"another gsmgw with host_id {host_id!r}"
    app = row.get("application_name") or "a session"
    where = f" from {row['client']}" if row.get("client") else ""
    return f"{app} (server pid {row.get('pid')}{where}, since {_since(row.get('backend_start'))})"


class PgLease:
    """The liveness lease of one host id: an advisory lock on a connection of its own."""

    def __init__(self, url: str, host_id: str, *, command: str) -> None:
        self.host_id = host_id
        self.key = host_lock_key(host_id)
        u = make_url(url)
        if u.drivername == "postgresql":
            u = u.set(drivername="postgresql+psycopg")
        app = f"gsmgw {os.getpid()}@{socket.gethostname()}"[:63]
        self.engine = create_engine(u, poolclass=NullPool,
                                    connect_args={"application_name": app, **PG_KEEPALIVE})
        self._conn: Connection | None = None
        self.command = command
        self._pid: int | None = None  # the server pid of the session holding the lease

    @property
    def held(self) -> bool:
        return self._conn is not None

    def acquire(self) -> None:
        if self._conn is not None:
            return
        try:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except DBAPIError as exc:
            raise StoreError(f"cannot connect to the store: {exc.orig or exc}") from None
        try:
            # The server notices a vanished machine within ~25 s and frees its lease.
            for name, value in (("tcp_keepalives_idle", 10), ("tcp_keepalives_interval", 5),
                                ("tcp_keepalives_count", 3), ("idle_session_timeout", 0)):
                with contextlib.suppress(DBAPIError):
                    conn.execute(text(f"SET {name} = {value}"))
            got = conn.execute(text("SELECT pg_try_advisory_lock(:ns, :key)"),
                               {"ns": PG_LOCK_NAMESPACE, "key": self.key}).scalar()
            if not got:
                row = next((r for r in _pg_holders(conn) if int(r["key"]) == self.key), None)
                holder = _describe_pg(row, self.host_id)
                raise StoreInUse(
                    f"host_id {self.host_id!r} is in use on this store by {holder}: "
                    "give each gateway its own [store] host_id, or stop the other one", holder)
            self._pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def check(self) -> str | None:
        """None while the lease is held; else why not (after trying to take it again)."""
        conn = self._conn
        if conn is not None:
            try:
                held = conn.execute(
                    text("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'"
                         " AND classid = :ns AND objid = :key AND objsubid = 2 AND granted"),
                    {"ns": PG_LOCK_NAMESPACE, "key": self.key}).scalar()
                if held:
                    return None
            except DBAPIError:
                pass
            with contextlib.suppress(Exception):
                conn.close()
            self._conn = None
            log.warning("the liveness lease of host_id %r was lost; taking it again", self.host_id)
        old_pid = self._pid
        try:
            self.acquire()
        except StoreInUse as exc:
            if old_pid is not None and self._holder_pid() == old_pid:
                # Our own old session, not yet gone on the server: try again next time.
                return "the host_id lease is being taken again (its old session is still closing)"
            return f"this gateway lost its host_id lease to another process: {exc}"
        except StoreError as exc:
            return f"the store's liveness lease is lost: {exc}"
        return None

    def _holder_pid(self) -> int | None:
        try:
            with self.engine.connect() as conn:
                row = next((r for r in _pg_holders(conn) if int(r["key"]) == self.key), None)
        except DBAPIError:
            return None
        return int(row["pid"]) if row is not None and row.get("pid") is not None else None

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.execute(text("SELECT pg_advisory_unlock(:ns, :key)"),
                             {"ns": PG_LOCK_NAMESPACE, "key": self.key})
            with contextlib.suppress(Exception):
                conn.close()
        self.engine.dispose()


def pg_holders(url: str) -> list[str]:
    """Every live gateway on a PostgreSQL store (for ``store migrate``/``copy``)."""
    u = make_url(url)
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    engine = create_engine(u, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [_describe_pg(r, "?") for r in _pg_holders(conn)]
    except DBAPIError:
        return []  # unreachable or not a gsmgw database: the command itself will say why
    finally:
        engine.dispose()


# --- the owner of one store, whatever the backend --------------------------------------------


@dataclass
class StoreOwner:
    """What a running gateway holds: the SQLite lock or the PostgreSQL host lease."""

    url: str
    host_id: str
    command: str = "gsmgw run"
    sqlite: SqliteLock | None = None
    pg: PgLease | None = None

    def __post_init__(self) -> None:
        path = sqlite_path(self.url)
        if path is not None:
            self.sqlite = SqliteLock(path)
        elif is_postgres(self.url):
            self.pg = PgLease(self.url, self.host_id, command=self.command)

    @property
    def exclusive(self) -> bool:
        """True when holding it proves no other gateway uses the store at all (SQLite)."""
        return self.sqlite is not None and self.sqlite.held

    def acquire(self) -> None:
        if self.sqlite is not None:
            self.sqlite.acquire(command=self.command, host_id=self.host_id)
        elif self.pg is not None:
            self.pg.acquire()

    def opened(self) -> None:
        """The store is open (created/migrated): remember it is expected, note its identity."""
        if self.sqlite is not None:
            remember_store(self.url)
            self.sqlite.note_database()

    def problem(self) -> str | None:
        if self.sqlite is not None:
            return self.sqlite.problem()
        if self.pg is not None:
            return self.pg.check()
        return None

    def warning(self) -> str | None:
        return self.sqlite.warning() if self.sqlite is not None else None

    def release(self) -> None:
        if self.sqlite is not None:
            self.sqlite.release()
        if self.pg is not None:
            self.pg.release()


def holders(url: str) -> list[str]:
    """Live gateways on a store, described (empty if none): the guard of maintenance commands."""
    path = sqlite_path(url)
    if path is not None:
        h = sqlite_holder(path)
        return [h] if h else []
    if is_postgres(url):
        return pg_holders(url)
    return []


def command_name() -> str:
    """``gsmgw run`` / ``gsmgw demo``: what this process is, for the lock file."""
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    return f"gsmgw {args[0]}" if args else "gsmgw"
