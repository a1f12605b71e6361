"""Vendor quirks, picked once at probe time from +CGMI/+CGMM.

Each field says what differs from plain 3GPP and why; hw-notes.md gives the
sources. Add a family by adding an entry to :data:`QUIRKS_BY_VENDOR`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gsmgw.modem.sequences import CNMI_DEFAULT, Step


@dataclass(frozen=True)
class Quirks:
    family: str = "generic"
    # Remaining-PIN-attempts queries, tried in order; empty when the vendor offers none we know.
    pin_attempts_commands: tuple[str, ...] = ('AT+CPINR="SIM PIN"',)
    iccid_commands: tuple[str, ...] = ("AT+CCID", "AT+ICCID", "AT+CRSM=176,12258,0,0,10")
    cnmi: tuple[str, ...] = CNMI_DEFAULT
    extra_init: tuple[Step, ...] = ()
    # USSD strings exchanged as packed GSM 7-bit hex (Huawei sticks).
    ussd_packed_hex: bool = False
    # Queries whose information line may be the whole answer (no final OK ever follows).
    # Wavecom does this to AT+CPIN? (ModemManager mm-broadband-modem-wavecom.c: "AT+CPIN?
    # replies will never have an OK appended"). Harmless elsewhere: an OK that does come
    # ends the command as usual, so every family tolerates it on this pure query. Never
    # a command with an effect, and never AT+CMGS.
    answers_without_final: tuple[str, ...] = ("AT+CPIN?",)


GENERIC = Quirks()

SIMCOM_2G = Quirks(
    family="simcom_2g",
    # SIM800 manual §3.2.x AT+SPIC: "+SPIC: <pin1>,<puk1>,<pin2>,<puk2>" remaining times.
    pin_attempts_commands=("AT+SPIC",),
    iccid_commands=("AT+CCID",),
    extra_init=(
        # Boot-readiness lines ("Call Ready", "SMS Ready") are URCs anyway; keep them on.
        Step.one("AT+CIURC=1", optional=True),
    ),
)

SIMCOM_LTE = Quirks(
    family="simcom_lte",
    pin_attempts_commands=("AT+SPIC", 'AT+CPINR="SIM PIN"'),
    iccid_commands=("AT+CICCID", "AT+CCID", "AT+CRSM=176,12258,0,0,10"),
)

QUECTEL = Quirks(
    family="quectel",
    pin_attempts_commands=('AT+QPINC="SC"',),
    iccid_commands=("AT+QCCID", "AT+CCID", "AT+CRSM=176,12258,0,0,10"),
    # EC25/EG25 store SMS-STATUS-REPORTs in "SR" but announce "+CDSI: "SM",0"
    # (asterisk-chan-quectel PR #75); route status reports directly (+CDS) first.
    cnmi=(
        "AT+CNMI=2,1,0,1,0",
        "AT+CNMI=2,1,0,2,0",
        "AT+CNMI=1,1,0,1,0",
        "AT+CNMI=2,1,0,0,0",
    ),
    extra_init=(
        # EC2x manual AT+QINDCFG: "+QIND: "smsfull",..." when storage fills up.
        Step.one('AT+QINDCFG="smsfull",1', optional=True),
    ),
)

HUAWEI = Quirks(
    family="huawei",
    # Huawei AT^CPIN?: "^CPIN: <code>,[<times>],<puk_times>,<pin_times>,<puk2_times>,<pin2_times>".
    pin_attempts_commands=("AT^CPIN?",),
    # ModemManager (mm-sim-huawei.c) reads "AT^ICCID?"; some firmware only knows the exec form.
    iccid_commands=("AT^ICCID?", "AT^ICCID", "AT+CRSM=176,12258,0,0,10"),
    # ^RSSI/^BOOT/^MODE every few seconds on the PC UI port: silence them.
    extra_init=(Step.one("AT^CURC=0", optional=True),),
    ussd_packed_hex=True,
)

WAVECOM = Quirks(
    family="wavecom",
    # Sierra Wireless (ex-Wavecom) AT+CPINC? "+CPINC: <pin1>,<pin2>,<puk1>,<puk2>" (mm-broadband-modem-sierra.c).
    pin_attempts_commands=("AT+CPINC?",),
    iccid_commands=("AT+CCID", "AT+CRSM=176,12258,0,0,10"),
)

TELIT = Quirks(family="telit", pin_attempts_commands=("AT#PCT",), iccid_commands=("AT#CCID", "AT+CRSM=176,12258,0,0,10"))

# (substring of lower-cased +CGMI, substring of lower-cased +CGMM or "", quirks); first match wins.
QUIRKS_BY_VENDOR: tuple[tuple[str, str, Quirks], ...] = (
    ("simcom", "sim7", SIMCOM_LTE),
    ("simcom", "a76", SIMCOM_LTE),
    ("simcom", "", SIMCOM_2G),
    ("quectel", "", QUECTEL),
    ("huawei", "", HUAWEI),
    ("telit", "", TELIT),
    ("wavecom", "", WAVECOM),
)


def pick_quirks(manufacturer: str, model: str) -> Quirks:
    m, mdl = manufacturer.lower(), model.lower()
    for vendor, model_part, quirks in QUIRKS_BY_VENDOR:
        if vendor in m and model_part in mdl:
            return quirks
    return GENERIC
