"""Start-up and CLI mistakes end in one line that says what to do, never a traceback (#15 point 8).

Every test runs the real command line as a subprocess and checks the exit status
and the one stderr line.
"""

from __future__ import annotations

import socket
from pathlib import Path

from gsmgw.store import Store
from tests.ownership.helpers import gsmgw, one_line


def _busy_port() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_api_port_in_use(tmp_path: Path) -> None:
    with _busy_port() as s:
        port = s.getsockname()[1]
        cfg = tmp_path / "gsmgw.toml"
        cfg.write_text(f'[api]\nlisten = "127.0.0.1:{port}"\n[store]\nurl = "sqlite:///{tmp_path / "g.db"}"\n')
        one_line(gsmgw("--log-level", "error", "run", "--config", str(cfg)), 1,
                 f"gsmgw run: cannot listen on 127.0.0.1:{port}: the port is in use", "[api] listen")
        one_line(gsmgw("--log-level", "error", "demo", "--port", str(port), "--modems", "1",
                       "--state-dir", str(tmp_path / "demo")), 1,
                 f"gsmgw demo: cannot listen on 127.0.0.1:{port}", "give another --port")
    # The refused gateway let go of its store: the next start may take it.
    assert not (tmp_path / "g.db.lock").read_text()


def test_store_url_a_plain_path_or_unparseable_or_relative(tmp_path: Path) -> None:
    cfg = tmp_path / "gsmgw.toml"
    cases = {
        "/var/lib/gsmgw/gsmgw.db": "is a file path, not a URL: write sqlite:////var/lib/gsmgw/gsmgw.db",
        "sqlite//var/lib/gsmgw.db": "is not a well-formed URL (it needs SCHEME://)",
        "gsmgw": "is not a URL",
        "postgres://gsmgw@db/gsmgw": "write postgresql+psycopg://",
        "mysql://x@y/z": "unsupported database 'mysql'",
        "sqlite:///gsmgw.db": "is relative to the folder gsmgw starts in",
        "sqlite://": "has no database file",
    }
    for url, needle in cases.items():
        cfg.write_text(f'[store]\nurl = "{url}"\n')
        one_line(gsmgw("run", "--config", str(cfg)), 2, f"{cfg}: store.url:", needle)
    one_line(gsmgw("store", "migrate", "--url", "gsmgw.db"), 1,
             "gsmgw store migrate: --url: 'gsmgw.db' is a file path, not a URL: write sqlite:///gsmgw.db")


def test_store_migrate_on_a_mistyped_path_creates_nothing_without_create(tmp_path: Path) -> None:
    real = tmp_path / "gsmgw.db"
    seed = Store(f"sqlite:///{real}")
    seed.migrate()
    seed.close()
    typo = tmp_path / "gsmwg.db"
    one_line(gsmgw("store", "migrate", "--url", f"sqlite:///{typo}"), 1,
             f"no store at {typo}", "--create")
    assert not typo.exists()
    res = gsmgw("store", "migrate", "--url", f"sqlite:///{typo}", "--create")
    assert res.returncode == 0 and "created a new store" in res.stdout, res.stderr
    assert typo.exists()
    res = gsmgw("store", "migrate", "--url", f"sqlite:///{real}")
    assert res.returncode == 0 and "already at the current schema" in res.stdout, res.stderr


def test_demo_api_key_shorter_than_the_key_policy(tmp_path: Path) -> None:
    one_line(gsmgw("demo", "--api-key", "short", "--state-dir", str(tmp_path / "s")), 2,
             "gsmgw demo: --api-key: an API key must be 16-200 printable characters", "has 5")
    assert not (tmp_path / "s").exists()  # refused before anything was made


def test_store_folder_missing_and_doctor_agrees(tmp_path: Path) -> None:
    cfg = tmp_path / "gsmgw.toml"
    # A folder that does not exist is not created behind the operator's back.
    cfg.write_text(f'[api]\nlisten = "127.0.0.1:0"\n[store]\nurl = "sqlite:///{tmp_path / "nope" / "g.db"}"\n')
    one_line(gsmgw("run", "--config", str(cfg)), 1, f"the folder of the store {tmp_path / 'nope' / 'g.db'} "
             "does not exist")
    assert not (tmp_path / "nope").exists()
    doc = gsmgw("doctor", "--config", str(cfg))
    assert f"FAIL  database: folder {tmp_path / 'nope'} does not exist" in doc.stdout


def test_store_removed_is_not_recreated_and_doctor_agrees(tmp_path: Path) -> None:
    cfg = tmp_path / "gsmgw.toml"
    # A store a gateway used, then removed: refused, with the way out.
    db = tmp_path / "g.db"
    cfg.write_text(f'[api]\nlisten = "127.0.0.1:0"\n[store]\nurl = "sqlite:///{db}"\n')
    res = gsmgw("keys", "create", "crm", "--config", str(cfg))  # first run: creates it
    assert res.returncode == 0, res.stderr
    assert (tmp_path / ".gsmgw-stores").read_text().split() == ["g.db"]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    for cmd in (("run",), ("keys", "list")):
        err = one_line(gsmgw(*cmd, "--config", str(cfg)), 1, f"the store {db} is gone", "restore it from a backup",
                       "gsmgw store init")
        assert err.startswith(f"gsmgw {' '.join(cmd)}: ")
    assert not db.exists()
    doc = gsmgw("doctor", "--config", str(cfg))
    assert f"FAIL  database: the store {db} is gone" in doc.stdout and doc.returncode == 1
    # The way out it names works.
    res = gsmgw("store", "init", "--config", str(cfg))
    assert res.returncode == 0 and "created a new store" in res.stdout, res.stderr


def test_store_name_typo_beside_a_store_and_doctor_agrees(tmp_path: Path) -> None:
    cfg = tmp_path / "gsmgw.toml"
    res = gsmgw("store", "init", "--url", f"sqlite:///{tmp_path / 'g.db'}")
    assert res.returncode == 0 and "created a new store" in res.stdout, res.stderr
    typo = tmp_path / "g2.db"
    cfg.write_text(f'[api]\nlisten = "127.0.0.1:0"\n[store]\nurl = "sqlite:///{typo}"\n')
    one_line(gsmgw("run", "--config", str(cfg)), 1, f"no store {typo}, but its folder holds g.db", "a typo?")
    assert not typo.exists()
    doc = gsmgw("doctor", "--config", str(cfg))
    assert f"FAIL  database: no store {typo}, but its folder holds g.db" in doc.stdout


def test_client_commands_without_a_gateway_or_a_key(tmp_path: Path) -> None:
    one_line(gsmgw("status", "--url", "http://127.0.0.1:9"), 2, "gsmgw status: no API key")
    one_line(gsmgw("status", "--url", "http://127.0.0.1:9", "--api-key", "k" * 20), 1,
             "gsmgw status: cannot reach http://127.0.0.1:9")
    one_line(gsmgw("send", "--to", "+15551234567", "--text", "x", env={"GSMGW_CONFIG": str(tmp_path / "no.toml")}),
             2, "gsmgw send: config error:", "cannot read")


def test_help_texts_have_no_markup() -> None:
    for cmd in ("run", "demo", "send", "status", "keys", "store", "doctor", "probe", "pdu", "fake-modem"):
        res = gsmgw(cmd, "--help")
        assert res.returncode == 0, res.stderr
        assert "`" not in res.stdout and "**" not in res.stdout, (cmd, res.stdout)
