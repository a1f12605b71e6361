"""A command rule runs the admin's argv with no shell: whatever the SMS says reaches the
program only as JSON on its stdin. Real processes (a script that records its argv and
stdin), a timeout that kills the process group, capped output."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from gsmgw.config import RuleConfig
from gsmgw.emulator import FakeModemPool
from gsmgw.rules import run_command
from tests.helpers import make_config, running_gateway
from tests.inbound.helpers import wait_until

RECORDER = """#!{python}
import json, sys
data = sys.stdin.read()
with open(sys.argv[1], "w") as f:
    json.dump({{"argv": sys.argv, "stdin": data}}, f)
print("recorded")
"""


def _recorder(tmp_path: Path) -> Path:
    script = tmp_path / "record.py"
    script.write_text(RECORDER.format(python=sys.executable))
    script.chmod(0o755)
    return script


async def test_sms_text_with_shell_syntax_reaches_the_command_literally_on_stdin(tmp_path: Path) -> None:
    script = _recorder(tmp_path)
    out = tmp_path / "record.json"
    pwned = tmp_path / "pwned"
    argv = (str(script), str(out), "--sim", "{sim}", "a b;c")  # argv as the admin wrote it, unrendered
    hostile = f"hi; rm -rf {tmp_path} $(touch {pwned}) `touch {pwned}` | touch {pwned} && echo $HOME"
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        cfg = dataclasses.replace(cfg, rules=(RuleConfig(name="hook", command=argv, command_timeout_s=20.0),))
        async with running_gateway(cfg) as (gw, c):
            gw.rules.consumer.poll_interval_s = 0.02
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            fake.modems[0].modem.inject_sms("+15550001111", hostile)

            async def finished() -> bool:
                runs = await gw.store.call(gw.store.rules.list_runs)
                return any(r["action"] == "command" and r["status"] != "started" for r in runs)

            await wait_until(finished, timeout_s=20, what="the command ran")
            record = json.loads(out.read_text())
            assert record["argv"] == list(argv)
            payload = json.loads(record["stdin"])
            assert payload["message"]["text"] == hostile and payload["message"]["from"] == "+15550001111"
            assert payload["rule"] == "hook" and payload["message"]["sim"] == "sim1"
            assert not pwned.exists() and tmp_path.exists()
            [run] = [r for r in await gw.store.call(gw.store.rules.list_runs) if r["action"] == "command"]
            assert run["status"] == "exit:0"
            assert json.loads(run["detail"])["stdout"] == "recorded\n"


async def test_timeout_kills_and_output_is_capped_and_failures_are_recorded(tmp_path: Path) -> None:
    sleeper = (sys.executable, "-c", "import time; print('started', flush=True); time.sleep(30)")
    status, detail = await run_command(sleeper, b"", timeout_s=0.5, output_max=100)
    assert status == "timeout" and "0.5" in detail["error"]

    chatty = (sys.executable, "-c", "import sys; sys.stdout.write('x' * 1_000_000); sys.exit(3)")
    status, detail = await run_command(chatty, b"", timeout_s=10, output_max=64)
    assert status == "exit:3" and detail["stdout"] == "x" * 64

    deaf = (sys.executable, "-c", "pass")  # does not read its stdin
    status, _ = await run_command(deaf, b"y" * 1_000_000, timeout_s=10, output_max=64)
    assert status == "exit:0"

    status, detail = await run_command(("/nonexistent/program",), b"", timeout_s=1, output_max=64)
    assert status == "error" and "cannot run" in detail["error"]

    env = (sys.executable, "-c", "import os, json; print(json.dumps(sorted(os.environ)))")
    status, detail = await run_command(env, b"", timeout_s=10, output_max=4096)
    assert status == "exit:0"
    assert set(json.loads(detail["stdout"])) <= {"PATH", "LANG", "LC_ALL", "TZ", "LC_CTYPE"}  # no secrets passed on
