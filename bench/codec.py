"""Encode/decode rates of the gsmgw SMS codec beside python-gammu and python-gsmmodem-new.

    python -m bench.codec --seconds 10 --json bench-codec.json

Prints a Markdown table (messages encoded per second, PDUs decoded per second, per
workload) and optionally writes the same numbers as JSON. ``run(seconds)`` returns them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

from gsmgw.sms import decode_pdu, encode_submit

TO = "+447700900123"
WORKLOADS: dict[str, str] = {
    "gsm7-short": "Your verification code is 482913. It expires in 10 minutes.",
    "gsm7-long-escapes": "Invoice total €129.50 [ref {A-17}] due soon. " * 9,  # ~3 parts
    "ucs2-emoji": "Привет! Встреча в 10:00 👋🏽😀 " * 6,  # ~3 parts
}


def _rate(fn: Callable[[], Any], budget_s: float) -> tuple[float, str | None]:
    """Calls per second of ``fn`` within ``budget_s`` (None rate + error text if it raises)."""
    try:
        fn()
    except Exception as exc:  # an oracle that cannot handle the workload
        return 0.0, f"{type(exc).__name__}: {exc}"[:80]
    n = 0
    start = time.perf_counter()
    deadline = start + budget_s
    while True:
        for _ in range(10):
            fn()
        n += 10
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start), None


def _gsmgw(text: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    pdus = [(p.pdu, p.tpdu_length) for p in encode_submit(TO, text, concat_ref=1).parts]

    def enc() -> Any:
        return encode_submit(TO, text, concat_ref=1)

    def dec() -> Any:
        return [decode_pdu(p, tpdu_length=n) for p, n in pdus]

    return enc, dec


def _gammu(text: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    import gammu

    unicode = any(ord(c) > 0x7F and c not in "€£¥èéùìòÇØøÅåÄÖÑÜäöñüà§" for c in text)

    def enc() -> Any:
        info = {"Class": -1, "Unicode": unicode, "Entries": [{"ID": "ConcatenatedTextLong", "Buffer": text}]}
        out = []
        for sms in gammu.EncodeSMS(info):
            sms["Number"] = TO
            sms["SMSC"] = {"Location": 0, "Number": "", "Validity": "NA", "Format": "Text"}
            out.append(gammu.EncodePDU(sms))
        return out

    raws = enc()

    def dec() -> Any:
        return [gammu.DecodePDU(r, True) for r in raws]

    return enc, dec


def _gsmmodem(text: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import gsmmodem.pdu as gp

    def enc() -> Any:
        return gp.encodeSmsSubmitPdu(TO, text, requestStatusReport=False)

    try:
        hexes = [p.data.hex() for p in enc()]
    except Exception:
        hexes = [p for p, _ in ((x.pdu, 0) for x in encode_submit(TO, text, concat_ref=1).parts)]

    def dec() -> Any:
        return [gp.decodeSmsPdu(h) for h in hexes]

    return enc, dec


LIBRARIES: dict[str, Callable[[str], tuple[Callable[[], Any], Callable[[], Any]]]] = {
    "gsmgw": _gsmgw,
    "python-gammu": _gammu,
    "python-gsmmodem-new": _gsmmodem,
}


def run(seconds: float) -> dict[str, Any]:
    """Measure every (library, workload, operation) within about ``seconds`` in total."""
    cells = len(LIBRARIES) * len(WORKLOADS) * 2
    budget = max(seconds / cells, 0.005)
    results = []
    for lib, factory in LIBRARIES.items():
        for name, text in WORKLOADS.items():
            try:
                enc, dec = factory(text)
            except Exception as exc:
                results.append({"library": lib, "workload": name, "encode_per_s": None, "decode_per_s": None,
                                "error": f"{type(exc).__name__}: {exc}"[:80]})
                continue
            enc_rate, enc_err = _rate(enc, budget)
            dec_rate, dec_err = _rate(dec, budget)
            results.append({
                "library": lib, "workload": name,
                "encode_per_s": round(enc_rate, 1) if enc_err is None else None,
                "decode_per_s": round(dec_rate, 1) if dec_err is None else None,
                "error": enc_err or dec_err,
            })
    return {
        "seconds": seconds,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "units": "encode: messages/s (all parts); decode: messages/s (all parts of one message)",
        "results": results,
    }


def to_markdown(report: dict[str, Any]) -> str:
    lines = ["| library | workload | encode msg/s | decode msg/s | note |", "|---|---|---:|---:|---|"]
    for r in report["results"]:
        enc = f"{r['encode_per_s']:,.0f}" if r["encode_per_s"] is not None else "—"
        dec = f"{r['decode_per_s']:,.0f}" if r["decode_per_s"] is not None else "—"
        lines.append(f"| {r['library']} | {r['workload']} | {enc} | {dec} | {r['error'] or ''} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.codec", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="total measuring time")
    ap.add_argument("--json", default=None, help="write the results as JSON to this path")
    args = ap.parse_args(argv)
    report = run(args.seconds)
    print(to_markdown(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
