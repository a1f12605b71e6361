"""``gsmgw pdu encode|decode``: the SMS codec from the command line, for admins
debugging a modem (paste a +CMGL/+CDS PDU, or build one to try with AT+CMGS)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gsmgw.errors import CodecError
from gsmgw.sms import Deliver, StatusReport, Submit, decode_pdu, encode_submit

EXIT_BAD_INPUT = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pdu", help="encode or decode SMS PDUs (PDU mode, TS 23.040)")
    p.set_defaults(func=run, pdu_command=None)
    pdu_sub = p.add_subparsers(dest="pdu_command", metavar="{encode,decode}")
    enc = pdu_sub.add_parser("encode", help="build SMS-SUBMIT PDU(s) for AT+CMGS")
    enc.add_argument("--to", required=True, help="destination: +E.164 or digits only")
    enc.add_argument("--text", required=True, help="message text")
    enc.add_argument("--smsc", default=None, help="SMSC number to put in the PDU (default: the SIM's)")
    enc.add_argument("--status-report", action="store_true", help="request a status report")
    enc.add_argument("--flash", action="store_true", help="class 0 (flash) message")
    enc.add_argument("--smart", action="store_true", help="replace typographic characters by GSM ones")
    enc.add_argument("--concat-ref", type=int, default=None, help="concatenation reference (default random)")
    enc.add_argument("--max-parts", type=int, default=10)
    dec = pdu_sub.add_parser("decode", help="decode a PDU as printed by +CMGL/+CMGR/+CMT/+CDS")
    dec.add_argument("hex", help="PDU in hex (with the SMSC field unless --no-smsc)")
    dec.add_argument("--length", type=int, default=None,
                     help="the <length> the modem printed (TPDU octets); infers the SMSC field")
    dec.add_argument("--no-smsc", action="store_true", help="the hex starts with the TPDU")


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None and hasattr(value, "isoformat") else value


def describe(msg: Deliver | Submit | StatusReport) -> dict[str, Any]:
    """JSON-friendly view of a decoded PDU (the shape ``gsmgw pdu decode`` prints)."""
    concat = None
    if msg.concat is not None:
        c = msg.concat
        concat = {"reference": c.reference, "total": c.total, "sequence": c.sequence, "bits": c.bits}
    out: dict[str, Any] = {
        "type": msg.type,
        "address": msg.address,
        "text": msg.text,
        "encoding": str(msg.encoding),
        "concat": concat,
        "tp_mr": None,
        "status": None,
        "class": msg.message_class,
        "smsc": msg.smsc,
    }
    if isinstance(msg, StatusReport):
        out.update(tp_mr=msg.tp_mr, status=msg.status, status_meaning=msg.status_meaning,
                   category=str(msg.category), final=msg.final, scts=_iso(msg.scts),
                   discharge_time=_iso(msg.discharge_time))
        return out
    out.update(tp_dcs=msg.tp_dcs, tp_pid=msg.tp_pid, user_data=msg.user_data.hex().upper(),
               udh=[{"iei": e.iei, "data": e.data.hex().upper()} for e in msg.udh],
               ports=list(msg.ports) if msg.ports else None, compressed=msg.compressed)
    if msg.locking_shift or msg.single_shift:
        out.update(locking_shift=msg.locking_shift, single_shift=msg.single_shift)
    if isinstance(msg, Deliver):
        out.update(scts=_iso(msg.scts))
    else:
        out.update(tp_mr=msg.tp_mr, status_report_requested=msg.status_report_requested,
                   validity=(msg.validity.total_seconds() if hasattr(msg.validity, "total_seconds")
                             else _iso(msg.validity)))  # type: ignore[union-attr]
    return out


def run(args: argparse.Namespace) -> int:
    try:
        if args.pdu_command == "encode":
            m = encode_submit(args.to, args.text, smsc=args.smsc, status_report=args.status_report,
                              flash=args.flash, smart_encoding=args.smart, concat_ref=args.concat_ref,
                              max_parts=args.max_parts)
            result: dict[str, Any] = {
                "encoding": str(m.encoding),
                "parts": [{"pdu": p.pdu, "tpdu_length": p.tpdu_length} for p in m.parts],
            }
        elif args.pdu_command == "decode":
            msg = decode_pdu(args.hex, tpdu_length=args.length, smsc_included=not args.no_smsc)
            result = describe(msg)
        else:
            print("usage: gsmgw pdu {encode,decode} ...", file=sys.stderr)
            return EXIT_BAD_INPUT
    except CodecError as exc:
        print(f"gsmgw pdu: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(result, ensure_ascii=False))
    return 0
