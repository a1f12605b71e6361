"""Personalities: identity strings, boot noise and error habits of real module families.

Each quirk names the manual (and the command or table) it comes from, so that a reader
can check it. Sources:

* [SIM800] SIMCom "SIM800 Series_AT Command Manual_V1.09", 2015-08-03.
* [SIM7600] SIMCom "SIM7500_SIM7600 Series_AT Command Manual_V1.xx".
* [EC25] Quectel "EC25&EC21_AT_Commands_Manual_V1.3", 2018-09-20.
* [HUAWEI] Huawei "ME909s Series LTE Module AT Command Interface Specification" /
  "MU709 Series AT Command Interface Specification": the E3372 in stick mode runs the
  same Balong AT command set (no public E3372-specific spec exists).
* [MM] ModemManager: ``plugins/wavecom/mm-broadband-modem-wavecom.c`` ("AT+CPIN? replies
  will never have an OK appended"), ``plugins/huawei/mm-plugin-huawei.c`` and
  ``src/mm-serial-parsers.c`` (``COMMAND NOT SUPPORT`` as an error final).
* [GAMMU] gammu ``tests/at-model/01.dump`` and ``06.dump``: ``AT+CGMM`` answered
  `` MULTIBAND  900E  1800 `` (Wavecom, leading blanks; 06 with ``\r\r\n`` line ends),
  ``tests/at-sms/41.dump``: a ``+CMGR`` PDU in lower-case hex.

Only behaviour that a gateway must cope with is modelled; everything else answers per
3GPP TS 27.007 / 27.005. Identity strings are those the modules print (firmware
revisions are examples of real ones).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Personality:
    key: str
    manufacturer: str
    model: str
    revision: str
    ati_lines: tuple[str, ...]
    """Lines ATI answers with ({imei} is substituted)."""
    boot_urcs: tuple[str, ...]
    """URCs after power-on, AT+CFUN=1,1 and PIN entry ({cpin} substituted with the SIM state)."""
    after_pin_urcs: tuple[str, ...] = ()
    """URCs after a successful AT+CPIN=<pin> (the SIM becomes ready)."""
    cgmr_prefix: str = ""
    """Some modules prefix AT+CGMR with a tag (SIM7600: ``+CGMR: ``)."""
    cgmi_prefix: str = ""
    cgmm_prefix: str = ""
    iccid_commands: tuple[tuple[str, str], ...] = (("+CCID", ""),)
    """(command, response prefix) pairs answering the ICCID."""
    first_index: int = 1
    """Index of the first storage slot (SIM800: 1; Quectel/Huawei ME storage count from 0)."""
    cmee_default: int = 0
    act: int | None = None
    """<AcT> shown in +COPS? (None: GSM-only module, field omitted)."""
    extra_registration_commands: tuple[str, ...] = ()
    """+CGREG / +CEREG style queries answered like +CREG?."""
    periodic_urcs: tuple[str, ...] = ()
    """Noise emitted every ``periodic_urc_interval_s`` while enabled ({rssi} substituted)."""
    periodic_urc_interval_s: float = 0.0
    curc_command: str | None = None
    """Vendor command that switches the periodic noise off (Huawei AT^CURC=0)."""
    storage_full_urc: str | None = None
    """URC when an inbound SMS cannot be stored ({mem} substituted)."""
    empty_cmgr_ok: bool = True
    """AT+CMGR on an empty slot answers OK with no data (SIMCom/Quectel) or +CMS ERROR 321."""
    ussd_hex_gsm7: bool = False
    """USSD strings are exchanged as packed GSM 7-bit hex (Huawei sticks) instead of text."""
    storages: tuple[str, ...] = ("SM", "ME")
    vendor_ok_commands: tuple[str, ...] = field(default=())
    """Vendor commands accepted with a bare OK (configuration the emulator does not model)."""

    # --- wire habits a driver must tolerate (issue 16) ---------------------------------
    sms_ready_urc: str | None = None
    """The boot URC after which SMS commands work (SIM800 "SMS Ready"). With
    ``Behaviour.sms_ready_delay_s`` it comes that much after the others, and SMS commands
    answer ERROR until it has."""
    info_without_final: tuple[str, ...] = ()
    """Commands, written as ``"+CPIN?"`` (read), ``"+CGMM"`` (action), ``"+CSQ=?"`` (test) or
    ``"+CMGF="`` (set), whose information answer ends without a final result code."""
    unknown_command_reply: str = "ERROR"
    """The final result for an extended command the module does not know."""
    line_ending: str = "\r\n"
    """What frames a response line (``"\r\r\n"`` on modules that double the CR)."""
    lower_case_hex: bool = False
    """PDUs shown by +CMGR/+CMGL/+CMT/+CDS in lower-case hex."""
    ident_padding: str = ""
    """Blanks before the value of an identification answer (+CGMI, +CGMM, +CGMR, +CGSN, ICCID)."""
    storm_urcs: tuple[str, ...] = ()
    """The lines of a URC storm (``Behaviour.urc_storm``); ``periodic_urcs`` when empty
    ({rssi} substituted)."""
    urc_storm: int = 0
    """Default for ``Behaviour.urc_storm``: storm lines before every OK and every ``> ``."""


# SIMCom SIM800 series.
SIMCOM_SIM800 = Personality(
    key="simcom_sim800",
    manufacturer="SIMCOM_Ltd",
    model="SIMCOM_SIM800",
    revision="Revision:1418B04SIM800C24",
    # [SIM800] ATI "Display Product Identification Information": "SIM800 R14.18".
    ati_lines=("SIM800 R14.18",),
    # [SIM800] "Summary of Unsolicited Result Codes" (p. 352): RDY when power-on is
    # complete at a fixed baud rate, +CPIN: <code>, then "Call Ready" (phonebook init
    # over) and "SMS Ready" (SMS init over).
    boot_urcs=("RDY", "+CFUN: 1", "+CPIN: {cpin}", "Call Ready", "SMS Ready"),
    after_pin_urcs=("+CPIN: READY", "Call Ready", "SMS Ready"),
    # [SIM800] AT+CCID "Show ICCID": the bare ICCID line, no prefix.
    iccid_commands=(("+CCID", ""),),
    first_index=1,
    # [SIM800] AT+CMEE "Report Mobile Equipment Error": factory default 0 (plain ERROR).
    cmee_default=0,
    act=None,  # GSM/GPRS only: +COPS? has no <AcT>.
    extra_registration_commands=("+CGREG",),
    empty_cmgr_ok=True,
    vendor_ok_commands=("+CSCLK", "+CLTS", "+CIURC", "+CSGS"),
    # [SIM800] "SMS Ready": SMS initialisation is over; SMS commands fail before it.
    sms_ready_urc="SMS Ready",
)

# SIMCom SIM7600 series (LTE Cat-1/4).
SIMCOM_SIM7600 = Personality(
    key="simcom_sim7600",
    manufacturer="SIMCOM INCORPORATED",
    model="SIMCOM_SIM7600E-H",
    revision="LE20B04SIM7600M22",
    # [SIM7600] ATI: labelled Manufacturer/Model/Revision/IMEI/+GCAP lines.
    ati_lines=(
        "Manufacturer: SIMCOM INCORPORATED",
        "Model: SIMCOM_SIM7600E-H",
        "Revision: SIM7600M22_V2.0",
        "IMEI: {imei}",
        "+GCAP: +CGSM",
    ),
    # [SIM7600] AT+CGMR answers "+CGMR: <revision>" (SIM800 prints it bare).
    cgmr_prefix="+CGMR: ",
    # [SIM7600] URC list: RDY, +CPIN: READY, SMS DONE, PB DONE after power-on.
    boot_urcs=("RDY", "+CPIN: {cpin}", "SMS DONE", "PB DONE"),
    after_pin_urcs=("+CPIN: READY", "SMS DONE", "PB DONE"),
    # [SIM7600] AT+CICCID "Read ICCID" answers "+ICCID: <iccid>"; there is no AT+CCID.
    iccid_commands=(("+CICCID", "+ICCID: "),),
    first_index=0,
    cmee_default=0,
    act=7,
    extra_registration_commands=("+CGREG", "+CEREG"),
    empty_cmgr_ok=True,
    vendor_ok_commands=("+CSCLK", "+CATR"),
    sms_ready_urc="SMS DONE",
)

# Quectel EC25 (LTE Cat-4).
QUECTEL_EC25 = Personality(
    key="quectel_ec25",
    manufacturer="Quectel",
    model="EC25",
    revision="EC25EFAR06A06M4G",
    # [EC25] ATI "Display Product Identification Information": Quectel / EC25 / Revision.
    ati_lines=("Quectel", "EC25", "Revision: EC25EFAR06A06M4G"),
    # [EC25] "RDY" once the UART is ready after power-on, then +CPIN, +QUSIM and the
    # +QIND "SMS DONE" / "PB DONE" indications (AT+QINDCFG URC list).
    boot_urcs=("RDY", "+CFUN: 1", "+CPIN: {cpin}", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE"),
    after_pin_urcs=("+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE"),
    # [EC25] AT+QCCID "Show ICCID": "+QCCID: <iccid>"; AT+CCID is accepted as well.
    iccid_commands=(("+QCCID", "+QCCID: "), ("+CCID", "+CCID: ")),
    # [EC25] SMS commands: storage indices count from 0 (examples read "+CMTI: "SM",0").
    first_index=0,
    # [EC25] AT+CMEE: default <n> is 1 (numeric +CME/+CMS codes) on shipped firmware.
    cmee_default=1,
    act=7,
    extra_registration_commands=("+CGREG", "+CEREG"),
    # [EC25] AT+QINDCFG "smsfull": URC +QIND: "smsfull",<storage> when SMS storage is full.
    storage_full_urc='+QIND: "smsfull","{mem}"',
    empty_cmgr_ok=True,
    vendor_ok_commands=("+QURCCFG", "+QINDCFG", "+QCFG", "+QSCLK"),
    sms_ready_urc="+QIND: SMS DONE",
)

# Huawei E3372 in "stick" (serial, non-HiLink) mode.
HUAWEI_E3372 = Personality(
    key="huawei_e3372",
    manufacturer="huawei",
    model="E3372",
    revision="22.200.15.00.00",
    # [HUAWEI] ATI: Manufacturer/Model/Revision/IMEI/+GCAP lines.
    ati_lines=(
        "Manufacturer: huawei",
        "Model: E3372",
        "Revision: 22.200.15.00.00",
        "IMEI: {imei}",
        "+GCAP: +CGSM,+DS,+ES",
    ),
    # [HUAWEI] ^SYSSTART (start-up complete) and ^SIMST: <sim_state> at power-on.
    boot_urcs=("^SYSSTART", "^SIMST: 1"),
    after_pin_urcs=("^SIMST: 1",),
    # [HUAWEI] AT^ICCID? "Query ICCID" answers "^ICCID: <iccid>" (read form only).
    iccid_commands=(("^ICCID", "^ICCID: "),),
    first_index=0,
    cmee_default=0,
    act=7,
    extra_registration_commands=("+CGREG", "+CEREG"),
    # [HUAWEI] ^RSSI (signal change), ^MODE (system mode change) and ^BOOT
    # unsolicited reports on the PC UI port; AT^CURC=0 switches the periodic ones off.
    periodic_urcs=("^RSSI: {rssi}", "^BOOT:20952548,0,0,0,72", "^MODE: 7,17"),
    periodic_urc_interval_s=2.0,
    curc_command="^CURC",
    # [HUAWEI] ^SMMEMFULL: <mem_type> "SMS memory full" unsolicited report.
    storage_full_urc='^SMMEMFULL: "{mem}"',
    empty_cmgr_ok=False,
    # [HUAWEI] +CUSD: <str> is exchanged as packed GSM 7-bit hex ("*100#" is "AA180C3602").
    ussd_hex_gsm7=True,
    vendor_ok_commands=("^SYSCFG", "^SYSCFGEX", "^PORTSEL", "^SETPORT"),
)

# Wavecom Fastrack / Q24 family (Sierra Wireless WMP firmware keeps the habits).
WAVECOM_FASTRACK = Personality(
    key="wavecom_fastrack",
    manufacturer="WAVECOM MODEM",
    # [GAMMU] tests/at-model/01.dump: the AT+CGMM answer, blanks included.
    model=" MULTIBAND  900E  1800 ",
    revision="R7.46.0.201108091301.FXT009 2286720 080911 13:01",
    ati_lines=("WAVECOM MODEM",),
    boot_urcs=(),
    iccid_commands=(("+CCID", "+CCID: "),),
    first_index=1,
    cmee_default=0,
    act=None,
    # [MM] mm-broadband-modem-wavecom.c: "AT+CPIN? replies will never have an OK appended".
    info_without_final=("+CPIN?",),
    ident_padding=" ",
    empty_cmgr_ok=True,
    vendor_ok_commands=("+WIND", "+WOPEN", "+WRST"),
)

# Huawei E1550 (3G stick, older Balong/Qualcomm firmware): the noisy PC UI port.
HUAWEI_E1550 = dataclasses.replace(
    HUAWEI_E3372,
    key="huawei_e1550",
    model="E1550",
    revision="11.608.12.02.21",
    ati_lines=(
        "Manufacturer: huawei",
        "Model: E1550",
        "Revision: 11.608.12.02.21",
        "IMEI: {imei}",
        "+GCAP: +CGSM,+DS,+ES",
    ),
    act=2,
    extra_registration_commands=("+CGREG",),
    # [MM] mm-plugin-huawei.c / mm-serial-parsers.c: unknown commands end with this line.
    unknown_command_reply="COMMAND NOT SUPPORT",
    # [HUAWEI] ^RSSI / ^MODE / ^DSFLOWRPT reports arrive whenever the radio says so, also
    # between a response and its OK and before the "> " prompt.
    storm_urcs=("^RSSI: {rssi}", "^MODE: 5,4", "^DSFLOWRPT:00000010,00000000,00000000,0000000000000000,0000000000000000,0003E800,0003E800"),
    urc_storm=3,
)

PERSONALITIES: dict[str, Personality] = {
    p.key: p
    for p in (SIMCOM_SIM800, SIMCOM_SIM7600, QUECTEL_EC25, HUAWEI_E3372, HUAWEI_E1550, WAVECOM_FASTRACK)
}
DEFAULT_PERSONALITY = SIMCOM_SIM800

# Wire habits that can be switched on for any personality (``gsmgw fake-modem --quirk``).
QUIRKS: dict[str, dict[str, object]] = {
    "cpin-without-ok": {"info_without_final": ("+CPIN?",)},
    "command-not-support": {"unknown_command_reply": "COMMAND NOT SUPPORT"},
    "crcrlf": {"line_ending": "\r\r\n"},
    "lower-hex": {"lower_case_hex": True},
    "ident-spaces": {"ident_padding": "  "},
}


def with_quirks(personality: Personality, quirks: list[str] | tuple[str, ...]) -> Personality:
    """``personality`` with the named wire habits of :data:`QUIRKS` switched on."""
    changes: dict[str, object] = {}
    for name in quirks:
        if name not in QUIRKS:
            raise ValueError(f"unknown quirk {name!r}; known: {', '.join(QUIRKS)}")
        changes.update(QUIRKS[name])
    if not changes:
        return personality
    suffix = "+".join(quirks)
    return dataclasses.replace(personality, key=f"{personality.key}+{suffix}", **changes)  # type: ignore[arg-type]
