"""``gsmgw probe PORT`` against emulated modems over a real pty."""

from __future__ import annotations

import argparse
import asyncio
import json
import tomllib

import pytest

from gsmgw.commands import probe as probe_cmd
from gsmgw.emulator import PERSONALITIES, Behaviour, EmulatedModem, Network, PtyModem


def args_for(port: str, **kw: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    probe_cmd.register(sub)
    argv = ["probe", port, "--timeout-s", "5", "--command-timeout-s", "0.5", "--registration-timeout-s", "1"]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}"] if v is True else [f"--{k.replace('_', '-')}", str(v)]
    return parser.parse_args(argv)


async def run_probe(em: EmulatedModem, tmp_path, **kw: object) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    async with PtyModem(em, tmp_path / "ttyGSM0") as pm:
        # The CLI owns its event loop (asyncio.run), so it runs in a thread while the
        # emulator keeps serving the pty on this loop.
        import contextlib
        import io

        buf = io.StringIO()

        def call() -> int:
            with contextlib.redirect_stdout(buf):
                return probe_cmd.run(args_for(str(pm.path), **kw))

        rc = await asyncio.to_thread(call)
    return rc, buf.getvalue()


@pytest.fixture
async def network():  # type: ignore[no-untyped-def]
    net = Network()
    yield net
    await net.aclose()


@pytest.mark.parametrize("personality", ["quectel_ec25", "huawei_e3372"])
async def test_probe_prints_identity_features_and_config(network, tmp_path, personality: str) -> None:  # type: ignore[no-untyped-def]
    em = EmulatedModem(network=network, number="+15550000001", personality=PERSONALITIES[personality])
    try:
        rc, out = await run_probe(em, tmp_path)
    finally:
        await em.aclose()
    assert rc == 0, out
    assert "State         ready" in out
    assert em.imei in out and em.iccid in out and em.operator in out
    assert "PDU mode         yes" in out and "USSD (CUSD)      yes" in out
    toml_text = out.split("Suggested config (gsmgw.toml)", 1)[1]
    block = tomllib.loads(toml_text)["modem"][0]
    assert block["imei"] == em.imei and block["id"]
    assert set(block) <= {"id", "imei", "port", "iccid", "pin", "sms_storage", "max_per_minute", "max_per_day", "send_timeout_s", "health_interval_s"}


async def test_probe_json_and_pin(network, tmp_path) -> None:  # type: ignore[no-untyped-def]
    em = EmulatedModem(network=network, number="+15550000001", pin="4321", personality=PERSONALITIES["simcom_sim800"])
    try:
        rc, out = await run_probe(em, tmp_path, pin="4321", json=True)
    finally:
        await em.aclose()
    report = json.loads(out)
    assert rc == 0 and report["ready"] is True
    assert report["identity"]["imei"] == em.imei
    assert any("sim_locked" in t for t in report["transitions"])
    assert 'pin = "4321"' in report["suggested_config"]


async def test_probe_sim_pin_missing_reports_and_fails(network, tmp_path) -> None:  # type: ignore[no-untyped-def]
    em = EmulatedModem(network=network, number="+15550000001", pin="4321")
    try:
        rc, out = await run_probe(em, tmp_path)
    finally:
        await em.aclose()
    assert rc == probe_cmd.EXIT_NOT_READY
    assert "PIN" in out and "State         failed" in out


async def test_probe_no_registration(network, tmp_path) -> None:  # type: ignore[no-untyped-def]
    em = EmulatedModem(network=network, number="+15550000001", behaviour=Behaviour(registration=0))
    try:
        rc, out = await run_probe(em, tmp_path)
    finally:
        await em.aclose()
    assert rc == probe_cmd.EXIT_NOT_READY
    assert "not registered" in out or "Registration" in out


def test_probe_missing_port_is_reported(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    rc = probe_cmd.run(args_for(str(tmp_path / "nope")))
    assert rc == probe_cmd.EXIT_NOT_READY  # reported as "cannot open", not a traceback
    assert "is missing" in capsys.readouterr().out
