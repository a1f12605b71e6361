"""Helpers for the service tests: TOML configs for `gsmgw run`, subprocess cleanup."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def toml_config(tmp_path: Path, modems: list[dict[str, Any]], *, listen: str = "127.0.0.1:0",
                db: Path | None = None, extra: str = "", log_format: str = "json",
                log_level: str = "info") -> str:
    """A config file as an admin would write it (the daemon reads files, not objects)."""
    lines = [
        "[api]", f'listen = "{listen}"', "",
        "[store]", f'url = "sqlite:///{db or tmp_path / "gsmgw.db"}"', "lease_s = 30.0", "",
        "[dispatch]", "poll_interval_s = 0.2", "retry_backoff_initial_s = 0.05", "",
        "[logging]", f'level = "{log_level}"', f'format = "{log_format}"', "",
    ]
    for m in modems:
        lines.append("[[modem]]")
        base = {"command_timeout_s": 2.0, "prompt_timeout_s": 2.0, "send_timeout_s": 3.0,
                "registration_timeout_s": 5.0, "health_interval_s": 30.0}
        for k, v in {**base, **m}.items():
            if isinstance(v, bool):
                lines.append(f"{k} = {'true' if v else 'false'}")
            elif isinstance(v, str):
                lines.append(f'{k} = "{v}"')
            else:
                lines.append(f"{k} = {v}")
        lines.append("")
    return "\n".join(lines) + extra


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[Any]]]:
    """Processes started by a test; whatever is still running at the end is killed."""
    started: list[subprocess.Popen[Any]] = []
    yield started
    for p in started:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        for stream in (p.stdout, p.stderr, p.stdin):
            if stream is not None:
                stream.close()


def gsmgw_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gsmgw", *args]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env
