"""`gsmgw demo`, run as the README's first command runs it: a real process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _wait_banner(proc: subprocess.Popen[str], timeout_s: float) -> tuple[str, str]:
    deadline = time.monotonic() + timeout_s
    seen = []
    url = key = None
    assert proc.stdout is not None
    while time.monotonic() < deadline and (url is None or key is None):
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if m := re.search(r"API:\s+(http://\S+)/api/v1", line):
            url = m.group(1)
        if m := re.search(r"API key:\s+(\S+)", line):
            key = m.group(1)
    if url is None or key is None:
        raise AssertionError("no banner from gsmgw demo:\n" + "".join(seen))
    return url, key


@pytest.mark.timeout(90)
def test_demo_command_sends_the_readme_curl_example(tmp_path: Path) -> None:
    curl = shutil.which("curl")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gsmgw", "demo", "--port", "0", "--modems", "2", "--latency-s", "0.05",
         "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url, key = _wait_banner(proc, 30)
        body = json.dumps({"to": "+15551234567", "text": "hi"})
        if curl:
            out = subprocess.run(
                [curl, "-s", "-H", f"Authorization: Bearer {key}", "-H", "Content-Type: application/json",
                 "-d", body, f"{url}/api/v1/messages"],
                capture_output=True, text=True, timeout=10, check=True,
            ).stdout
        else:  # pragma: no cover - curl is on every CI image we use
            import urllib.request

            req = urllib.request.Request(f"{url}/api/v1/messages", data=body.encode(), method="POST",
                                         headers={"Authorization": f"Bearer {key}",
                                                  "Content-Type": "application/json"})
            out = urllib.request.urlopen(req, timeout=10).read().decode()
        reply = json.loads(out)
        assert reply["state"] == "queued"
        # `gsmgw send --wait-s` doubles as the CLI client test.
        status = subprocess.run(
            [sys.executable, "-m", "gsmgw", "status", "--url", url, "--api-key", key],
            capture_output=True, text=True, timeout=20,
        )
        assert status.returncode == 0, status.stderr
        assert "sim1" in status.stdout
        deadline = time.monotonic() + 20
        state = None
        while time.monotonic() < deadline:
            import urllib.request

            req = urllib.request.Request(f"{url}/api/v1/messages/{reply['id']}",
                                         headers={"Authorization": f"Bearer {key}"})
            state = json.loads(urllib.request.urlopen(req, timeout=5).read())["state"]
            if state in ("sent", "delivered"):
                break
            time.sleep(0.1)
        assert state in ("sent", "delivered")
        sent = subprocess.run(
            [sys.executable, "-m", "gsmgw", "send", "--url", url, "--api-key", key, "--to", "+15557654321",
             "--text", "from the CLI", "--wait-s", "15"],
            capture_output=True, text=True, timeout=30,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            assert proc.stdout is not None
            proc.stdout.close()
    assert rc == 0
    # The key is kept for the next start and is not world-readable.
    key_file = tmp_path / "state" / "api-key"
    assert key_file.read_text().strip() == key
    assert key_file.stat().st_mode & 0o077 == 0


def test_keys_create_prints_the_key_alone(tmp_path: Path) -> None:
    cfg = tmp_path / "gsmgw.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "db.sqlite"}"\n')
    out = subprocess.run(
        [sys.executable, "-m", "gsmgw", "keys", "create", "crm", "--scope", "send,read", "--config", str(cfg)],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    assert re.fullmatch(r"gsk_[0-9a-f]{8}_\S+\n", out)
    bad = subprocess.run(
        [sys.executable, "-m", "gsmgw", "keys", "create", "x", "--scope", "root", "--config", str(cfg)],
        capture_output=True, text=True, timeout=30,
    )
    assert bad.returncode == 2 and "scopes" in bad.stderr


def test_run_with_bad_config_names_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "gsmgw.toml"
    cfg.write_text('[api]\nlisten = 8080\n')
    res = subprocess.run([sys.executable, "-m", "gsmgw", "run", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert f"{cfg}: api.listen: expected a string" in res.stderr


def test_help_explains_each_command() -> None:
    out = subprocess.run([sys.executable, "-m", "gsmgw", "--help"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    for cmd in ("run", "demo", "send", "status", "keys"):
        assert cmd in out
