"""``gsmgw fake-modem``: a pool of emulated modems on pseudo-terminals, until Ctrl-C.

Point any serial AT client at the printed paths (gammu, gammu-smsd, minicom,
smstools, gsmgw itself). SMS between the printed numbers are delivered to each other.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
from pathlib import Path

from gsmgw.emulator.behaviour import Behaviour
from gsmgw.emulator.network import Network, parse_fail_rule
from gsmgw.emulator.personality import PERSONALITIES, QUIRKS, Personality, with_quirks
from gsmgw.emulator.pty import FakeModemPool, PtyModem
from gsmgw.emulator.replay import ReplayModem
from gsmgw.emulator.transcript import format_transcript, load_transcript

EXIT_BAD_INPUT = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "fake-modem",
        help="run emulated GSM modems on pseudo-terminals (for trying gsmgw and other SMS software)",
        description="Emulated GSM modems on pseudo-terminals, attached to one simulated network. "
        "Point any serial AT client at the printed paths; SMS between the printed numbers "
        "are delivered to each other. Runs until Ctrl-C.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", type=int, default=2, help="number of modems (default 2)")
    p.add_argument("--dir", default="./fake-modems",
                   help="directory for the stable symlinks ttyGSM0, ttyGSM1, ... (default ./fake-modems)")
    p.add_argument("--personality", default="simcom_sim800",
                   help=f"module family, or a comma list per modem: {', '.join(PERSONALITIES)}")
    p.add_argument("--latency-s", type=float, default=0.2, help="AT+CMGS latency in seconds (default 0.2)")
    p.add_argument("--latency-jitter-s", type=float, default=0.0,
                   help="uniform random extra latency in [0, J] seconds")
    p.add_argument("--report-delay-s", type=float, default=1.0,
                   help="delay before a status report (default 1.0)")
    p.add_argument("--fail-rule", action="append", default=[], metavar="REGEX[=STATUS]",
                   help="destinations fully matching REGEX get TP-ST STATUS (default 0x41); repeatable")
    p.add_argument("--pin", default=None, help="every SIM needs this PIN (AT+CPIN)")
    p.add_argument("--hang-on-submit", action="store_true", help="never answer AT+CMGS")
    p.add_argument("--hang-after-sending", action="store_true",
                   help="with --hang-on-submit: the SMS still goes out, only the answer is lost")
    p.add_argument("--drop-on-submit", action="store_true",
                   help="the port vanishes after each PDU (like a USB reset), see --replug-after-s")
    p.add_argument("--replug-after-s", type=float, default=None, metavar="S",
                   help="a dropped modem comes back on a new pty after S seconds")
    p.add_argument("--registration-delay-s", type=float, default=0.0,
                   help="time from boot to network registration")
    p.add_argument("--cms-error", type=int, default=None, metavar="CODE",
                   help="answer every submit with +CMS ERROR: CODE (e.g. 500 transient, 21 permanent)")
    p.add_argument("--cms-error-first-n", type=int, default=None, metavar="N",
                   help="only the first N submits get --cms-error")
    p.add_argument("--trickle", type=float, nargs="?", const=0.002, default=None, metavar="SECONDS",
                   help="write output one byte at a time (default pause 0.002 s)")
    p.add_argument("--echo", action=argparse.BooleanOptionalAction, default=None,
                   help="initial echo (real modems start with echo on)")
    p.add_argument("--no-registration", action="store_true", help="the SIMs never register")
    p.add_argument("--storage-full", action="store_true", help="SIM storage is full at start")
    p.add_argument("--quirk", action="append", default=[], metavar="NAME[,NAME]",
                   help=f"switch on a wire habit of real modules for every modem: {', '.join(QUIRKS)}; repeatable")
    p.add_argument("--sms-ready-delay-s", type=float, default=0.0, metavar="S",
                   help="after each boot SMS commands answer ERROR for S seconds, then the SMS-ready URC "
                        "(SIM800 'SMS Ready') is printed")
    p.add_argument("--urc-storm", type=int, default=None, metavar="N",
                   help="N vendor URCs (^RSSI/^MODE...) between every response and its OK and before every "
                        "'> ' (default: the personality's; huawei_e1550 storms with 3)")
    p.add_argument("--transient-read-error", type=int, default=None, metavar="CODE",
                   help="the first AT+CMGR of an index just announced by +CMTI/+CDSI answers "
                        "+CMS ERROR: CODE (e.g. 321)")
    p.add_argument("--transcript-dir", default=None, help="write a raw byte transcript per modem here")
    p.add_argument("--seed", type=int, default=None, help="seed for random latencies")
    p.add_argument("--show-transcript", default=None, metavar="FILE",
                   help="print a transcript written with --transcript-dir readably, then exit")
    p.add_argument("--replay", default=None, metavar="FILE",
                   help="one modem that answers from a recorded transcript (gsmgw probe --record FILE, or "
                        "--transcript-dir): each command gets its recorded answer, unknown ones ERROR")
    p.add_argument("--replay-time-scale", type=float, default=0.0, metavar="X",
                   help="with --replay: answer after X times the recorded latency (default 0: at once)")


def behaviour_from_args(args: argparse.Namespace) -> Behaviour:
    return Behaviour(
        send_latency_s=args.latency_s,
        send_latency_jitter_s=args.latency_jitter_s,
        cms_error_on_submit=args.cms_error,
        cms_error_first_n=args.cms_error_first_n,
        hang_on_submit=args.hang_on_submit,
        hang_after_sending=args.hang_after_sending,
        drop_port_on_submit=args.drop_on_submit,
        replug_after_s=args.replug_after_s,
        registration_delay_s=args.registration_delay_s,
        trickle_s=args.trickle,
        echo=args.echo,
        registration=0 if args.no_registration else 1,
        storage_full=args.storage_full,
        sms_ready_delay_s=args.sms_ready_delay_s,
        urc_storm=args.urc_storm,
        transient_read_error=args.transient_read_error,
    )


def quirk_names(args: argparse.Namespace) -> list[str]:
    return [q.strip() for spec in args.quirk for q in spec.split(",") if q.strip()]


def personalities_from_args(args: argparse.Namespace) -> list[Personality]:
    """One personality per modem (the comma list cycles), with the --quirk habits on."""
    names = args.personality.split(",")
    quirks = quirk_names(args)
    return [with_quirks(PERSONALITIES[names[i % len(names)]], quirks) for i in range(args.count)]


def validate(args: argparse.Namespace) -> str | None:
    if not 1 <= args.count <= 256:
        return "--count must be from 1 to 256"
    for name in args.personality.split(","):
        if name not in PERSONALITIES:
            return f"--personality {name!r} unknown; choose from {', '.join(PERSONALITIES)}"
    for value, flag in ((args.latency_s, "--latency-s"), (args.latency_jitter_s, "--latency-jitter-s"),
                        (args.report_delay_s, "--report-delay-s"),
                        (args.registration_delay_s, "--registration-delay-s"),
                        (args.replug_after_s or 0.0, "--replug-after-s"),
                        (args.sms_ready_delay_s, "--sms-ready-delay-s"),
                        (args.urc_storm or 0, "--urc-storm")):
        if value < 0:
            return f"{flag} must be >= 0"
    for name in quirk_names(args):
        if name not in QUIRKS:
            return f"--quirk {name!r} unknown; choose from {', '.join(QUIRKS)}"
    if args.transient_read_error is not None and not 0 <= args.transient_read_error <= 511:
        return "--transient-read-error must be a +CMS ERROR code from 0 to 511"
    if args.pin is not None and not (args.pin.isdigit() and 4 <= len(args.pin) <= 8):
        return "--pin must be 4 to 8 digits"
    return None


async def serve(args: argparse.Namespace, stop: asyncio.Event) -> int:
    rules = [parse_fail_rule(r) for r in args.fail_rule]
    network = Network(report_delay_s=args.report_delay_s, delivery_rule=rules or None)
    personalities = personalities_from_args(args)
    behaviours = [behaviour_from_args(args) for _ in range(args.count)]
    directory = Path(args.dir)
    async with FakeModemPool(
        count=args.count,
        directory=directory,
        behaviours=behaviours,
        personalities=personalities,
        network=network,
        pins=args.pin,
        transcript_dir=Path(args.transcript_dir) if args.transcript_dir else None,
    ) as pool:
        if args.seed is not None:
            for i, pm in enumerate(pool.modems):
                pm.modem.rng = random.Random(args.seed + i)
        print(f"{args.count} emulated modem(s) on network {network.operator!r} (SMSC {network.smsc}):")
        for pm in pool.modems:
            m = pm.modem
            print(f"  {pm.path} -> {pm.slave_path}  number {m.number}  "
                  f"{m.personality.key}  IMEI {m.imei}")
        print("Press Ctrl-C to stop.", flush=True)
        await stop.wait()
    return 0


async def serve_replay(args: argparse.Namespace, stop: asyncio.Event) -> int:
    modem = ReplayModem.from_file(Path(args.replay), time_scale=args.replay_time_scale)
    pm = PtyModem(modem, Path(args.dir) / "ttyGSM0")
    async with pm:
        n = sum(len(a) for a in modem.script.answers.values())
        print(f"replaying {args.replay} ({len(modem.script.answers)} commands, {n} answers):")
        print(f"  {pm.path} -> {pm.slave_path}")
        print("Press Ctrl-C to stop.", flush=True)
        await stop.wait()
    if modem.unknown:
        print(f"commands the transcript did not answer (got ERROR): {', '.join(sorted(set(modem.unknown)))}")
    return 0


def show_transcript(path: str) -> int:
    try:
        entries = load_transcript(Path(path))
    except (OSError, ValueError) as exc:
        print(f"gsmgw fake-modem: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(format_transcript(entries))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.show_transcript:
        return show_transcript(args.show_transcript)
    if args.replay:
        try:
            ReplayModem.from_file(Path(args.replay))
        except (OSError, ValueError) as exc:
            print(f"gsmgw fake-modem: --replay: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if args.replay_time_scale < 0:
            print("gsmgw fake-modem: --replay-time-scale must be >= 0", file=sys.stderr)
            return EXIT_BAD_INPUT
    error = validate(args)
    if error is None:
        try:
            [parse_fail_rule(r) for r in args.fail_rule]
        except ValueError as exc:
            error = str(exc)
    if error is not None:
        print(f"gsmgw fake-modem: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    args.dir = str(Path(args.dir).resolve())

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            return await (serve_replay(args, stop) if args.replay else serve(args, stop))
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    return asyncio.run(main())
