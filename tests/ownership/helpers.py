"""The gsmgw command line as a subprocess, and its one-line refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def gsmgw(*args: str, env: dict[str, str] | None = None, timeout_s: float = 30.0,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("GSMGW_CONFIG", "GSMGW_URL", "GSMGW_API_KEY", "NOTIFY_SOCKET")}
    return subprocess.run([sys.executable, "-m", "gsmgw", *args], capture_output=True, text=True,
                          timeout=timeout_s, env={**base, **(env or {})}, cwd=cwd)


def one_line(res: subprocess.CompletedProcess[str], rc: int, *needles: str) -> str:
    """Assert the command failed with ``rc`` and said so in exactly one stderr line."""
    err = res.stderr.strip()
    assert res.returncode == rc, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "\n" not in err, res.stderr
    for needle in needles:
        assert needle in err, err
    return err
