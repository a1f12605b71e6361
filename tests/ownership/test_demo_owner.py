"""`gsmgw demo` owns its state folder, and the CLI finds the demo through the config it writes
(#15 points 1 and 9): a second demo on the folder is refused and the first keeps working;
`gsmgw send/status/keys` with GSMGW_CONFIG use the demo's store and key; SIGKILL frees the folder.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ownership.helpers import gsmgw, one_line


def _start_demo(state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gsmgw", "--log-level", "warning", "demo", "--port", "0", "--modems", "1",
         "--latency-s", "0.05", "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _banner(proc: subprocess.Popen[str], timeout_s: float = 30) -> str:
    """The demo's banner, up to its last line; fails if the demo exits first."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    out = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("demo ended before its banner:\n" + "".join(out))
        out.append(line)
        if line.startswith("Stop with Ctrl-C"):
            return "".join(out)
    raise AssertionError("no banner:\n" + "".join(out))


def _end(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_second_demo_is_refused_the_cli_uses_the_first_and_sigkill_frees_the_folder(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = _start_demo(state)
    procs = [first]
    try:
        banner = _banner(first)
        cli_cfg = state / "gsmgw.toml"
        assert f"export GSMGW_CONFIG={cli_cfg}" in banner
        key = re.search(r"API key:\s+(\S+)", banner).group(1)  # type: ignore[union-attr]

        # A second demo on the same folder: one line, who holds it, exit 1.
        err = one_line(gsmgw("demo", "--port", "0", "--modems", "1", "--state-dir", str(state)), 1,
                       f"gsmgw demo: the state folder {state} is in use by gsmgw demo (pid {first.pid} on "
                       f"{socket.gethostname()}, since ", "another --state-dir")
        assert "Traceback" not in err

        # The first demo is untouched, and the CLI finds it through its config and key.
        env = {"GSMGW_CONFIG": str(cli_cfg)}
        sent = gsmgw("send", "--to", "+15551234567", "--text", "from the CLI", "--wait-s", "15", env=env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        lines = sent.stdout.strip().splitlines()
        assert re.fullmatch(r"queued +[0-9a-f]{24}  to \+15551234567  gsm7, 1 part", lines[0]), lines
        assert re.fullmatch(r"(sent|delivered) +[0-9a-f]{24} from sim1", lines[-1]), lines
        raw = gsmgw("send", "--to", "+15551234567", "--to", "+15557654321", "--text", "two", "--json", env=env)
        assert raw.returncode == 0, raw.stderr
        assert len(json.loads(raw.stdout)["messages"]) == 2
        status = gsmgw("status", env=env)
        assert status.returncode == 0, status.stderr
        assert re.search(r"sim1 +ready", status.stdout), status.stdout
        keys = gsmgw("keys", "list", env=env)
        assert keys.returncode == 0 and "\tdemo\t" in keys.stdout and key.split("_")[1] in keys.stdout
        new_key = gsmgw("keys", "create", "crm", env=env).stdout.strip()
        revoke = gsmgw("keys", "revoke", new_key.split("_")[1], env=env)
        assert revoke.returncode == 0, revoke.stderr
        assert re.fullmatch(r"revoked [0-9a-f]{8}; running gateways refuse it within \d+ s "
                            r"\(the time they cache a checked key\)\n", revoke.stdout), revoke.stdout

        # SIGKILL: the kernel frees the folder; the next demo starts on it.
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        again = _start_demo(state)
        procs.append(again)
        assert "gsmgw demo is running" in _banner(again)
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=30) == 0
    finally:
        for p in procs:
            _end(p)
