"""The run path imports a door only when the config asks for it (docs/architecture.md).

Each optional door (MQTT, e-mail, SMPP, console, rules) and its libraries cost resident
memory in every gateway process (issue 17: RSS at 64 modems on a Raspberry Pi). A gateway
started from a config without them (the console, on by default, turned off), in a fresh
interpreter, must not have them in ``sys.modules``; the same gateway with ``[smpp] listen``
set and the console left on imports those two doors and no other (so the check sees
imports at all).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DOORS = ("gsmgw.mqtt", "gsmgw.mail", "gsmgw.smpp", "gsmgw.console", "gsmgw.rules",
         "aiomqtt", "paho", "aiosmtpd", "aiosmtplib", "jinja2")

SCRIPT = r"""
import asyncio, dataclasses, json, sys
from pathlib import Path
import gsmgw.cli  # the `gsmgw run` entry point, as the daemon imports it
from gsmgw.config import ApiConfig, Config, ConsoleConfig, SmppConfig, StoreConfig
from gsmgw.daemon import Gateway

tmp, smpp = Path(sys.argv[1]), sys.argv[2] == "smpp"
cfg = Config(api=ApiConfig(listen="127.0.0.1:0"),
             store=StoreConfig(url=f"sqlite:///{tmp / 'gsmgw.db'}", lease_s=30.0),
             smpp=SmppConfig(listen="127.0.0.1:0") if smpp else SmppConfig(),
             console=ConsoleConfig() if smpp else ConsoleConfig(enabled=False))

async def main() -> None:
    gw = Gateway(cfg, host="lazy-test", create_store=True)
    await gw.start()
    await gw.stop()

asyncio.run(main())
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {"gsmgw", "aiomqtt", "paho",
      "aiosmtpd", "aiosmtplib", "jinja2", "sqlalchemy", "alembic"})))
"""


def _imported(tmp_path: Path, variant: str) -> set[str]:
    from gsmgw.store import Store

    store = Store(f"sqlite:///{tmp_path / 'gsmgw.db'}")  # an existing store, as on every restart
    try:
        store.migrate()
    finally:
        store.close()
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), variant], capture_output=True,
                         text=True, timeout=60, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _doors(mods: set[str]) -> set[str]:
    return {m for m in mods if any(m == d or m.startswith(d + ".") for d in DOORS)}


@pytest.mark.timeout(90)
def test_run_path_imports_no_unconfigured_door(tmp_path: Path) -> None:
    mods = _imported(tmp_path, "plain")
    assert "gsmgw.daemon" in mods and "gsmgw.api" in mods
    assert _doors(mods) == set()
    # Nor alembic for a store already at head (Store.migrate), nor SQLAlchemy's PostgreSQL
    # dialect on SQLite (store/tables.py: postgresql_options).
    assert "alembic" not in mods
    assert "sqlalchemy.dialects.postgresql" not in mods


@pytest.mark.timeout(90)
def test_configured_door_is_imported(tmp_path: Path) -> None:
    mods = _imported(tmp_path, "smpp")
    assert {"gsmgw.smpp", "gsmgw.console"} <= mods
    # The console's template engine loads with the first page an admin opens, not at start
    # (tests/console/test_http.py::test_the_template_engine_loads_with_the_first_page).
    assert "jinja2" not in mods
    others = {"gsmgw.mqtt", "gsmgw.mail", "gsmgw.rules", "aiomqtt", "paho", "aiosmtpd", "aiosmtplib"}
    assert _doors(mods) & others == set() and not any(m.startswith(tuple(o + "." for o in others))
                                                      for m in mods)


@pytest.mark.timeout(30)
def test_postgresql_index_options_added_when_a_postgresql_engine_opens() -> None:
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex

    from gsmgw.store.repo import open_engine
    from gsmgw.store.tables import claim_tx_index

    engine, _ = open_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # no connection made
    engine.dispose()
    ddl = str(CreateIndex(claim_tx_index).compile(dialect=postgresql.dialect()))
    assert ddl.endswith("WHERE transactional = true")


@pytest.mark.timeout(30)
def test_script_heads_agree_with_alembic() -> None:
    from alembic.script import ScriptDirectory

    from gsmgw.store.migrate import alembic_config
    from gsmgw.store.repo import script_heads

    assert script_heads() == set(ScriptDirectory.from_config(alembic_config()).get_heads())


PARSER_SCRIPT = r"""
import json, sys
from gsmgw.cli import build_parser
build_parser(json.loads(sys.argv[1]))
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("gsmgw.commands.", "gsmgw.emulator", "gsmgw.smpp")))))
"""


@pytest.mark.parametrize(("argv", "lean"), [
    (["run", "--config", "gw.toml"], True),
    (["--log-level", "debug", "run"], True),
    (["demo", "--port", "0"], True),
    (["fake-modem", "--count", "2"], False),  # a command of its own module: all of them
    (["--log-level", "debug"], False),  # no command yet: --help must list every one
    (["bogus"], False),  # argparse's "invalid choice" names every command
])
def test_the_run_command_line_leaves_the_other_commands_out(argv: list[str], lean: bool) -> None:
    """`gsmgw run` (and the other core commands of cli.py) builds its parser without the
    COMMAND_MODULES (the emulator, SMPP, probe, ...: 1.4 MB of a gateway's RSS); any
    other command, or none, still gets every command's parser."""
    out = subprocess.run([sys.executable, "-c", PARSER_SCRIPT, json.dumps(argv)], capture_output=True,
                         text=True, timeout=60, check=True)
    mods = set(json.loads(out.stdout.strip().splitlines()[-1]))
    if lean:
        assert not {m for m in mods if m.startswith(("gsmgw.emulator", "gsmgw.smpp"))}, mods
        assert "gsmgw.commands.fake_modem" not in mods and "gsmgw.commands.smpp" not in mods
    else:
        assert {"gsmgw.commands.fake_modem", "gsmgw.commands.smpp", "gsmgw.emulator"} <= mods
