"""Personalities: identity strings, boot noise and error habits of real module families.

Each quirk names the manual (and the command or table) it comes from, so that a reader
can check it. Sources:

* [SIM800] SIMCom "SIM800 Series_AT Command Manual_V1.09", 2015-08-03.
* [SIM7600] SIMCom "SIM7500_SIM7600 Series_AT Command Manual_V1.xx".
* [EC25] Quectel "EC25&EC21_AT_Commands_Manual_V1.3", 2018-09-20.
* [HUAWEI] Huawei "ME909s Series LTE Module AT Command Interface Specification" /
  "MU709 Series AT Command Interface Specification": the E3372 in stick mode runs the
  same Balong AT command set (no public E3372-specific spec exists).

Only behaviour that a gateway must cope with is modelled; everything else answers per
3GPP TS 27.007 / 27.005. Identity strings are those the modules print (firmware
revisions are examples of real ones).
"""

from __future__ import annotations

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

PERSONALITIES: dict[str, Personality] = {
    p.key: p for p in (SIMCOM_SIM800, SIMCOM_SIM7600, QUECTEL_EC25, HUAWEI_E3372)
}
DEFAULT_PERSONALITY = SIMCOM_SIM800
