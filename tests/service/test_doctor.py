"""`gsmgw doctor`: each check against a host the test controls, and the real CLI."""

from __future__ import annotations

import grp
import os
import socket
import subprocess
from pathlib import Path

import pytest

from gsmgw.commands.doctor import Host, Level, check_modemmanager, check_ports, check_user, diagnose
from gsmgw.emulator import FakeModemPool
from gsmgw.store import Store
from gsmgw.store.migrate import upgrade
from tests.service.conftest import child_env, gsmgw_cmd, toml_config


def _host(tmp_path: Path, **kw: object) -> Host:
    base: dict[str, object] = {"proc": tmp_path / "proc", "udev_data": tmp_path / "udev",
                               "rules_dirs": [tmp_path / "rules"], "serial_globs": [str(tmp_path / "dev" / "tty*")],
                               "mm_binaries": [str(tmp_path / "ModemManager")]}
    base.update(kw)
    return Host(**base)  # type: ignore[arg-type]


def _levels(findings: list) -> dict[str, str]:
    return {f.check: f.level.value for f in findings}


def test_user_must_be_in_dialout() -> None:
    dialout = grp.getgrnam("dialout").gr_gid
    assert check_user(Host(uid=65534, groups=[dialout])).level is Level.OK
    f = check_user(Host(uid=65534, groups=[]))
    assert f.level is Level.FAIL and "usermod -aG dialout" in f.fix
    assert check_user(Host(uid=0, groups=[])).level is Level.WARN


def test_modemmanager_running_without_ignore_rules_fails(tmp_path: Path) -> None:
    (tmp_path / "proc" / "812").mkdir(parents=True)
    (tmp_path / "proc" / "812" / "comm").write_text("ModemManager\n")
    (tmp_path / "rules").mkdir()
    [f] = check_modemmanager([], _host(tmp_path))
    assert f.level is Level.FAIL and "60-gsmgw.rules" in f.fix
    # Installed but stopped: a warning only.
    (tmp_path / "proc" / "812" / "comm").write_text("bash\n")
    (tmp_path / "ModemManager").write_text("")
    [f] = check_modemmanager([], _host(tmp_path))
    assert f.level is Level.WARN
    (tmp_path / "ModemManager").unlink()
    assert [x.level for x in check_modemmanager([], _host(tmp_path))] == [Level.OK]


def test_modemmanager_running_checks_each_port_in_the_udev_database(tmp_path: Path) -> None:
    (tmp_path / "proc" / "812").mkdir(parents=True)
    (tmp_path / "proc" / "812" / "comm").write_text("ModemManager\n")
    (tmp_path / "rules").mkdir()
    repo_rules = Path(__file__).resolve().parents[2] / "udev" / "60-gsmgw.rules"
    (tmp_path / "rules" / "60-gsmgw.rules").write_text(repo_rules.read_text())
    port = "/dev/null"  # a character device every host has: c1:3
    st = os.stat(port)
    (tmp_path / "udev").mkdir()
    db = tmp_path / "udev" / f"c{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    db.write_text("E:ID_MM_DEVICE_IGNORE=1\nE:GSMGW_MODEM=1\nG:gsmgw\n")
    found = check_modemmanager([port], _host(tmp_path))
    assert [f.level for f in found] == [Level.OK, Level.OK]
    db.write_text("E:ID_VENDOR_ID=1e0e\n")
    assert check_modemmanager([port], _host(tmp_path))[1].level is Level.FAIL
    db.unlink()
    assert check_modemmanager([port], _host(tmp_path))[1].level is Level.WARN


def test_ports_missing_or_not_writable(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    host = _host(tmp_path)
    found = check_ports([str(tmp_path / "dev" / "ttyUSB9"), "socket://10.0.0.5:7000"], host)
    assert _levels(found)[f"port {tmp_path / 'dev' / 'ttyUSB9'}"] == "FAIL"
    assert _levels(found)["port socket://10.0.0.5:7000"] == "OK"


async def test_doctor_on_a_healthy_setup_says_ok_and_exits_0(tmp_path: Path) -> None:
    async with FakeModemPool(count=2, directory=tmp_path / "ports") as fake:
        cfg = tmp_path / "gsmgw.toml"
        cfg.write_text(toml_config(tmp_path, [{"id": f"sim{i}", "port": str(m.path)}
                                              for i, m in enumerate(fake.modems)]))
        found = diagnose(cfg, _host(tmp_path, uid=65534, groups=[grp.getgrnam("dialout").gr_gid]))
        levels = _levels(found)
        assert levels["config"] == "OK" and levels["user"] == "OK"
        assert levels[f"port {fake.modems[0].path}"] == "OK"
        assert levels["database"] == "OK" and levels["api"] == "OK"  # db made at first start; port 0
        assert not [f for f in found if f.level is Level.FAIL]


def test_database_behind_head_warns_and_unwritable_folder_fails(tmp_path: Path) -> None:
    db = tmp_path / "gsmgw.db"
    store = Store(f"sqlite:///{db}")
    upgrade(store.engine, "0001")
    store.close()
    cfg = tmp_path / "gsmgw.toml"
    cfg.write_text(toml_config(tmp_path, [], db=db))
    levels = _levels(diagnose(cfg, _host(tmp_path)))
    assert levels["database"] == "WARN"  # migrations pending, they run at start
    Store(f"sqlite:///{db}").migrate()
    assert _levels(diagnose(cfg, _host(tmp_path)))["database"] == "OK"
    cfg.write_text(toml_config(tmp_path, [], db=tmp_path / "nope" / "x.db"))
    assert _levels(diagnose(cfg, _host(tmp_path)))["database"] == "FAIL"


def test_api_port_in_use_is_reported(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = tmp_path / "gsmgw.toml"
        cfg.write_text(toml_config(tmp_path, [], listen=f"127.0.0.1:{port}"))
        assert _levels(diagnose(cfg, _host(tmp_path)))["api"] == "WARN"


@pytest.mark.timeout(60)
def test_cli_exit_status_and_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[api]\nlisten = 8080\n")
    res = subprocess.run(gsmgw_cmd("doctor", "--config", str(bad)), capture_output=True, text=True,
                         timeout=30, env=child_env())
    assert res.returncode == 1
    assert f"FAIL  config: {bad}: api.listen: expected a string" in res.stdout
    good = tmp_path / "good.toml"
    good.write_text(toml_config(tmp_path, []))
    res = subprocess.run(gsmgw_cmd("doctor", "--config", str(good)), capture_output=True, text=True,
                         timeout=30, env=child_env())
    assert "OK    config:" in res.stdout and "WARN  modems:" in res.stdout
    assert res.returncode == (1 if "FAIL" in res.stdout else 0)
