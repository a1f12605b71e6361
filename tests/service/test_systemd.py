"""The systemd unit and the sd_notify protocol of a real `gsmgw run` process."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import REPO, child_env, gsmgw_cmd, toml_config

UNIT = REPO / "systemd" / "gsmgw.service"


def _venv_gsmgw() -> Path:
    import sys

    exe = Path(sys.executable).parent / "gsmgw"
    if not exe.exists():
        pytest.skip(f"no gsmgw console script next to {sys.executable} (pip install -e .)")
    return exe


def _unit_for_this_host(tmp_path: Path) -> Path:
    """The shipped unit with ExecStart pointing at this venv's gsmgw (verify needs it to exist)."""
    text = UNIT.read_text()
    assert "ExecStart=/opt/gsmgw/bin/gsmgw run --config /etc/gsmgw/gsmgw.toml" in text
    out = tmp_path / "gsmgw.service"
    out.write_text(text.replace("/opt/gsmgw/bin/gsmgw", str(_venv_gsmgw())))
    return out


def _analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze not installed (apt install systemd)")
    return exe


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    unit = _unit_for_this_host(tmp_path)
    res = subprocess.run([_analyze(), "verify", "--man=no", str(unit)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "gsmgw.service" not in res.stderr, res.stdout + res.stderr


def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    unit = _unit_for_this_host(tmp_path)
    unit.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"))
    res = subprocess.run([_analyze(), "verify", "--man=no", str(unit)],
                         capture_output=True, text=True, timeout=60)
    assert "notifyy" in res.stderr  # the check above would notice a bad key


def test_unit_sandbox_exposure_is_low(tmp_path: Path) -> None:
    unit = _unit_for_this_host(tmp_path)
    res = subprocess.run([_analyze(), "security", "--offline=yes", "--man=no", str(unit)],
                         capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", res.stdout + res.stderr)
    if m is None:
        pytest.skip("this systemd-analyze has no offline security report")
    assert float(m.group(1)) <= 2.0, res.stdout


def test_unit_keeps_what_the_service_needs() -> None:
    text = UNIT.read_text()
    keys: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            keys.setdefault(k.strip(), []).append(v.strip())
    assert keys["Type"] == ["notify"] and keys["NotifyAccess"] == ["main"]
    assert keys["WatchdogSec"] and keys["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "dialout" in keys["SupplementaryGroups"][0]
    assert keys["StateDirectory"] == ["gsmgw"] and keys["ConfigurationDirectory"] == ["gsmgw"]
    assert keys["DevicePolicy"] == ["closed"]
    allowed = " ".join(keys["DeviceAllow"])
    for dev in ("char-ttyUSB rw", "char-ttyACM rw", "char-ttyAMA rw", "char-ttyS rw"):
        assert dev in allowed
    assert "AF_NETLINK" in keys["RestrictAddressFamilies"][0]  # udev hot-plug events
    assert keys.get("PrivateDevices", ["no"]) == ["no"]  # would hide /dev/ttyUSB*
    # Shutdown waits for in-flight sends (send_timeout_s defaults to 60 s).
    assert int(keys["TimeoutStopSec"][0].rstrip("s")) > 60


# --- the notify protocol, through a real datagram socket ------------------------------


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.seen: list[str] = []

    def wait_for(self, wanted: str, timeout_s: float) -> list[str]:
        """Datagrams until one has the line ``wanted``; fails after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        got = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {wanted!r} within {timeout_s}s; got {self.seen}")
            self.sock.settimeout(left)
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.seen.append(msg)
            got.append(msg)
            if wanted in msg.split("\n"):
                return got

    def close(self) -> None:
        self.sock.close()


def _api_port(log_file: Path) -> int:
    for line in log_file.read_text().splitlines():
        try:
            rec: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError:
            continue
        if m := re.search(r"API listening on 127\.0\.0\.1:(\d+)", rec.get("msg", "")):
            return int(m.group(1))
    raise AssertionError("no 'API listening' line:\n" + log_file.read_text())


@pytest.mark.timeout(60)
def test_run_speaks_ready_watchdog_reloading_and_stopping(tmp_path: Path, procs: list[Any]) -> None:
    cfg = tmp_path / "gsmgw.toml"
    cfg.write_text(toml_config(tmp_path, []))
    notify = NotifySocket(tmp_path / "notify.sock")
    log_file = tmp_path / "gsmgw.log"
    try:
        with log_file.open("w") as log_out:
            proc = subprocess.Popen(
                gsmgw_cmd("run", "--config", str(cfg)), stdout=subprocess.DEVNULL, stderr=log_out,
                env=child_env(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="300000"),
            )
        procs.append(proc)
        notify.wait_for("READY=1", 30)
        # READY means the store is open and the API is bound: it answers right now.
        port = _api_port(log_file)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.")
        # WATCHDOG=1 at half of WATCHDOG_USEC, from the main loop.
        t0 = time.monotonic()
        notify.wait_for("WATCHDOG=1", 5)
        notify.wait_for("WATCHDOG=1", 5)
        assert time.monotonic() - t0 < 2.0
        # SIGHUP: a reload is announced and READY comes back.
        proc.send_signal(signal.SIGHUP)
        got = notify.wait_for("RELOADING=1", 10)
        notify.wait_for("READY=1", 10)
        proc.send_signal(signal.SIGTERM)
        got = notify.wait_for("STOPPING=1", 20)
        assert proc.wait(timeout=30) == 0
        assert "config reloaded from" in log_file.read_text()
        assert got
    finally:
        notify.close()


@pytest.mark.timeout(60)
def test_demo_speaks_the_protocol_too_and_ignores_a_foreign_watchdog_pid(tmp_path: Path, procs: list[Any]) -> None:
    notify = NotifySocket(tmp_path / "n.sock")
    try:
        proc = subprocess.Popen(
            gsmgw_cmd("demo", "--port", "0", "--modems", "1", "--latency-s", "0.01",
                      "--state-dir", str(tmp_path / "state")),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # WATCHDOG_PID names another process: this one must not ping (sd_watchdog_enabled(3)).
            env=child_env(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="200000", WATCHDOG_PID="1"),
        )
        procs.append(proc)
        notify.wait_for("READY=1", 30)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1", 20)
        assert proc.wait(timeout=30) == 0
        assert not any("WATCHDOG=1" in m for m in notify.seen), notify.seen
    finally:
        notify.close()
