"""``gsmgw probe PORT``: what an admin runs first on new hardware.

Opens the port, runs the driver's bring-up once (never sends a PIN twice),
prints identity, signal, registration, storage and which features work, and
suggests a ``[[modem]]`` block for gsmgw.toml.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from gsmgw import __version__
from gsmgw.config import ModemConfig
from gsmgw.emulator.replay import redact_command
from gsmgw.emulator.transcript import Transcript
from gsmgw.modem.probe import ProbeReport, probe, suggest_config

EXIT_NOT_READY = 1
EXIT_BAD_INPUT = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("probe", help="probe a modem port and suggest a [[modem]] config block", description=__doc__)
    p.add_argument("port", help="/dev/ttyUSB2, /dev/serial/by-id/..., a pty, or socket://host:port")
    p.add_argument("--baudrate", type=int, default=115200, help="serial speed (default 115200; ignored for pty/socket)")
    p.add_argument("--pin", default=None, help="SIM PIN to enter if the SIM asks (sent at most once)")
    p.add_argument("--timeout-s", type=float, default=90.0, help="give up after this many seconds (default 90)")
    p.add_argument("--command-timeout-s", type=float, default=5.0, help="per-command timeout (default 5)")
    p.add_argument("--registration-timeout-s", type=float, default=60.0, help="wait this long for the network (default 60)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--trace", action="store_true", help="print every raw byte exchanged (to stderr)")
    p.add_argument("--record", metavar="FILE", default=None,
                   help="write every byte exchanged to FILE (JSON lines, the SIM PIN masked) to attach to a "
                        "bug report; replay it with 'gsmgw fake-modem --replay FILE'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.port:
        print("gsmgw probe: a port is required", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.baudrate <= 0 or args.timeout_s <= 0 or args.command_timeout_s <= 0:
        print("gsmgw probe: baudrate and timeouts must be positive", file=sys.stderr)
        return EXIT_BAD_INPUT

    recorder = None
    if args.record:
        try:
            Path(args.record).unlink(missing_ok=True)  # a fresh file, not appended to an old one
            recorder = Transcript(Path(args.record))
        except OSError as exc:
            print(f"gsmgw probe: cannot write {args.record}: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        recorder.record("event", f"gsmgw {__version__} probe {args.port} at {args.baudrate} baud".encode())

    def trace(ts: float, direction: str, data: bytes) -> None:
        if recorder is not None:
            recorder.record("in" if direction == "tx" else "out", _mask_pin(data, args.pin))
        if not args.trace:
            return
        stamp = datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]
        shown = _mask_pin(data, args.pin)
        print(f"{stamp} {'>>' if direction == 'tx' else '<<'} {shown!r}", file=sys.stderr)

    settings = ModemConfig(
        id="probe",
        port=args.port,
        baudrate=args.baudrate,
        pin=args.pin or "",
        command_timeout_s=args.command_timeout_s,
        prompt_timeout_s=args.command_timeout_s,
        registration_timeout_s=args.registration_timeout_s,
        sim_ready_timeout_s=min(20.0, args.timeout_s),
    )
    if not args.trace:
        logging.getLogger("gsmgw.modem").setLevel(logging.ERROR)
        logging.getLogger("gsmgw.at").setLevel(logging.ERROR)
    try:
        report = asyncio.run(probe(settings, timeout_s=args.timeout_s,
                                   trace=trace if args.trace or recorder is not None else None))
        if recorder is not None:
            recorder.record("event", f"probe report {json.dumps(report.to_dict(), default=str)}".encode())
    finally:
        if recorder is not None:
            recorder.close()
    if recorder is not None:
        print(f"Transcript written to {args.record}: attach it to the bug report "
              "(it holds the IMEI, IMSI, ICCID and number; the PIN is masked).", file=sys.stderr)
    if args.json:
        print(json.dumps({**report.to_dict(), "suggested_config": suggest_config(report, pin=args.pin)}, indent=2, default=str))
    else:
        print_report(report, sys.stdout, pin=args.pin)
    return 0 if report.ready else EXIT_NOT_READY


def _mask_pin(data: bytes, pin: str | None) -> bytes:
    """The bytes with the SIM PIN masked: in ``AT+CPIN="..."`` and wherever it is echoed."""
    if b"CPIN=" in data.upper():
        data = redact_command(data.decode("latin-1")).encode("latin-1")
    if pin:
        data = data.replace(pin.encode(), b"****")
    return data


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def print_report(report: ProbeReport, out: TextIO, *, pin: str | None = None) -> None:
    i, f, h = report.identity, report.features, report.health
    w = out.write
    w(f"Port          {report.port}\n")
    w(f"State         {report.state}" + (f"  ({report.reason})" if report.reason and not report.ready else "") + "\n")
    w(f"Probe time    {report.elapsed_s:.1f} s\n\n")
    w("Identity\n")
    for label, value in (
        ("manufacturer", i.manufacturer),
        ("model", i.model),
        ("firmware", i.firmware),
        ("IMEI", i.imei),
        ("IMSI", i.imsi),
        ("ICCID", i.iccid),
        ("operator", i.operator),
        ("own number", i.own_number or "(not stored on the SIM)"),
        ("quirks", report.quirks),
    ):
        w(f"  {label:<13}{value or '-'}\n")
    w("\nRadio\n")
    if h is not None:
        dbm = f"{h.signal_dbm} dBm" if h.signal_dbm is not None else "unknown"
        w(f"  signal       CSQ {h.csq} ({dbm})\n")
        w(f"  registration {h.registration}\n")
        total = h.storage_total if h.storage_total is not None else "?"
        w(f"  storage      {h.storage_used if h.storage_used is not None else '?'} of {total} used\n")
    else:
        w("  (not reached)\n")
    w("\nFeatures\n")
    w(f"  PDU mode         {_yes(f.pdu_mode)}\n")
    w(f"  new-SMS notify   {f.cnmi or 'none accepted (inbound relies on the AT+CMGL sweep)'}\n")
    w(f"  CNMI modes       {f.cnmi_supported or '-'}\n")
    w(f"  status reports   {f.status_reports or 'not routed (no delivery confirmations)'}\n")
    w(f"  multipart CMMS   {_yes(f.cmms)}\n")
    w(f"  USSD (CUSD)      {_yes(f.cusd)}\n")
    w(f"  storages         {f.storages or '-'}\n")
    w(f"  registration via {', '.join(f.registration_queries) or '-'}\n")
    if f.pin_attempts_left is not None:
        w(f"  PIN attempts left {f.pin_attempts_left}\n")
    w("\nSuggested config (gsmgw.toml)\n\n")
    w(suggest_config(report, pin=pin) + "\n")
