"""Parsers on real wire strings, each named after the module it came from.

Sources: gammu / TinyGSM / luci-app issue threads with raw logs (cited per case)
and the vendors' AT manuals where no public log was at hand.
"""

from __future__ import annotations

import pytest

from gsmgw.at import parsers as p
from gsmgw.modem.ussd import decode_response, encode_request

# --- +CSQ --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "rssi", "ber", "dbm"),
    [
        ("+CSQ: 25,5", 25, 5, -63),  # test_csq_sim800c: TinyGSM issue #654
        ("+CSQ: 22,0", 22, 0, -69),  # test_csq_sim800l: ArduinoSIM800L issue #9
        ("+CSQ: 12,99", 12, 99, -89),  # test_csq_option_gtm382: wammu issue #27
        ("+CSQ: 30,99", 30, 99, -53),  # test_csq_quectel_ec25: luci-app-modeminfo issue #45
        ("+CSQ: 99,99", 99, 99, None),  # no signal (TS 27.007 §8.5)
    ],
    ids=["sim800c", "sim800l", "option_gtm382", "quectel_ec25", "unknown"],
)
def test_csq(line: str, rssi: int, ber: int, dbm: int | None) -> None:
    s = p.parse_csq(line)
    assert (s.rssi, s.ber, s.dbm) == (rssi, ber, dbm)


def test_csq_garbage_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="CSQ"):
        p.parse_csq("+CSQ: ")


# --- registration --------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "solicited", "kind", "stat", "registered", "lac", "ci", "act"),
    [
        # TinyGSM issue #654, SIM800C: roaming counts as registered.
        ("+CREG: 0,5", True, "CREG", 5, True, "", "", None),
        # TinyGSM issue #318, SIM808: searching.
        ("+CREG: 0,2", True, "CREG", 2, False, "", "", None),
        # ArduinoSIM800L issue #9, SIM800L: unknown.
        ("+CREG: 0,4", True, "CREG", 4, False, "", "", None),
        # luci-app-3ginfo-lite issue #135, Quectel EC200A with AT+CREG=2.
        ('+CREG: 2,1,"00A8","5355E8D",7', True, "CREG", 1, True, "00A8", "5355E8D", 7),
        # luci-app-3ginfo-lite issue #82, Fibocom L850-GL: stat 6 = registered for SMS only.
        ('+CREG: 2,6,"7D08","04E23C04",7', True, "CREG", 6, True, "7D08", "04E23C04", 7),
        # luci-app-modeminfo issue #45, Quectel EC25.
        ("+CEREG: 0,1", True, "CEREG", 1, True, "", "", None),
        # LilyGo-T-SIM7080G issue #3, SIM7080G on NB-IoT before provisioning.
        ("+CGREG: 0,2", True, "CGREG", 2, False, "", "", None),
        # Unsolicited forms (TS 27.007 §7.2): no <n>.
        ("+CREG: 1", False, "CREG", 1, True, "", "", None),
        ('+CREG: 1,"1A2B","00C0FFEE"', False, "CREG", 1, True, "1A2B", "00C0FFEE", None),
    ],
    ids=[
        "sim800c_roaming",
        "sim808_searching",
        "sim800l_unknown",
        "quectel_ec200a_creg2",
        "fibocom_l850_sms_only",
        "quectel_ec25_cereg",
        "simcom_sim7080g_cgreg",
        "urc_short",
        "urc_lac_ci",
    ],
)
def test_registration(
    line: str, solicited: bool, kind: str, stat: int, registered: bool, lac: str, ci: str, act: int | None
) -> None:
    r = p.parse_registration(line, solicited=solicited)
    assert (r.kind, r.stat, r.registered, r.lac, r.ci, r.act) == (kind, stat, registered, lac, ci, act)


# --- storage -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # gammu issue #138, Huawei E1752 answering AT+CPMS="SM","SM" (set form, no names).
        ("+CPMS: 1,50,1,50,1,50", [("", 1, 50), ("", 1, 50), ("", 1, 50)]),
        # gammu issue #126, Huawei E1752, ME storage of 23 with a 50-slot third memory.
        ("+CPMS: 0,23,0,23,0,50", [("", 0, 23), ("", 0, 23), ("", 0, 50)]),
        # gammu issue #242: a module with only two memories in the answer.
        ("+CPMS: 0,10,0,10", [("", 0, 10), ("", 0, 10)]),
        # gammu issue #408: 255-slot ME storage.
        ("+CPMS: 0,255,0,255,0,255", [("", 0, 255)] * 3),
        # Read form with names (SIM800 manual §4.2.7 AT+CPMS?).
        ('+CPMS: "SM",1,50,"SM",1,50,"SM",1,50', [("SM", 1, 50)] * 3),
    ],
    ids=["huawei_e1752_set", "huawei_e1752_me", "two_memories_gammu_242", "me_255_gammu_408", "read_form_sim800"],
)
def test_cpms(line: str, expected: list[tuple[str, int, int]]) -> None:
    assert [(u.mem, u.used, u.total) for u in p.parse_cpms(line)] == expected


# --- SMS listing / reading / sending -----------------------------------------------


def test_cmgl_huawei_e1752() -> None:
    # gammu issue #126 (raw hex dump reassembled): one received, unread message.
    got = p.parse_cmgl(
        ["+CMGL: 0,0,,23", "07913366003051F5040B913366304381F900005180719120348004D4F29C0E"]
    )
    assert got == [p.ListedPdu(0, 0, 23, "07913366003051F5040B913366304381F900005180719120348004D4F29C0E")]
    # The TPDU length excludes the SMSC part: 31 octets - (1 + 7) = 23.
    assert len(got[0].pdu_hex) // 2 - (1 + int(got[0].pdu_hex[:2], 16)) == got[0].tpdu_length


def test_cmgl_telit_uc864() -> None:
    # Telit UC864-E/G AT Commands Reference Guide 80304ST10041a, +CMGL example.
    got = p.parse_cmgl(["+CMGL: 26,2,,17", "08812801009901025911640A8110567892820014A704C7D1B1DB"])
    assert [(x.index, x.stat, x.tpdu_length) for x in got] == [(26, 2, 17)]


def test_cmgl_several_with_alpha_and_garbage_between() -> None:
    got = p.parse_cmgl(
        [
            '+CMGL: 1,1,"Mum",23',
            "07913366003051F5040B913366304381F900005180719120348004D4F29C0E",
            "\ufffd\ufffdnoise",
            "+CMGL: 2,0,,17",  # header without PDU line: dropped, not guessed
            "+CMGL: 3,0,,17",
            "08812801009901025911640A8110567892820014A704C7D1B1DB",
        ]
    )
    assert [x.index for x in got] == [1, 3]


def test_cmgr_empty_slot_ec25_plain_ok() -> None:
    # asterisk-chan-quectel PR #75: EC25 answers AT+CMGR=0 on an empty slot with plain OK.
    assert p.parse_cmgr([], 0) is None


def test_cmgr_huawei_empty_header() -> None:
    assert p.parse_cmgr(["+CMGR: 0,,0"], 4) is None


def test_cmgr_telit() -> None:
    got = p.parse_cmgr(["+CMGR: 2,,17", "08812801009901025911640A8110567892820014A704C7D1B1DB"], 26)
    assert got is not None and (got.index, got.stat, got.tpdu_length) == (26, 2, 17)


@pytest.mark.parametrize(
    ("lines", "mr"),
    [
        (["+CMGS: 53"], 53),  # gammu issue #468, Quectel EC25
        (["+CMGS: 0"], 0),
        (['+CMGS: 12,"0791..."'], 12),  # with <ackpdu> (TS 27.005 §3.5.1)
    ],
)
def test_cmgs(lines: list[str], mr: int) -> None:
    assert p.parse_cmgs(lines) == mr


def test_cmgs_missing_is_clear() -> None:
    with pytest.raises(ValueError, match="CMGS"):
        p.parse_cmgs(["OK?"])


@pytest.mark.parametrize(
    ("line", "mem", "index"),
    [
        ('+CMTI: "SM",3', "SM", 3),
        ('+CMTI: "ME",0', "ME", 0),  # Quectel EC25 counts from 0
        ('+CDSI: "SM",0', "SM", 0),  # asterisk-chan-quectel PR #75, EC25-E (really in "SR")
        ('+CDSI: "SR",1', "SR", 1),
    ],
)
def test_indications(line: str, mem: str, index: int) -> None:
    assert p.parse_cmti(line) == (mem, index)


def test_cmt_and_cds_headers() -> None:
    assert p.parse_cmt_header("+CMT: ,24") == 24
    assert p.parse_cmt_header('+CMT: "",24') == 24
    assert p.parse_cds_header("+CDS: 25") == 25


# --- SIM and identity -----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("+CPIN: READY", "READY"),  # gammu issue #126, Huawei E1752
        ("+CPIN: SIM PIN", "SIM PIN"),  # TinyGSM issue #318, SIM808
        ("+CPIN: NOT READY", "NOT READY"),  # TinyGSM issue #318 after AT+CFUN=0
        ('+CPIN: "SIM PUK"', "SIM PUK"),
    ],
)
def test_cpin(line: str, code: str) -> None:
    assert p.parse_cpin(line) == code


@pytest.mark.parametrize(
    ("lines", "left"),
    [
        (['+QPINC: "SC",3,10'], 3),  # Quectel EC2x AT manual, AT+QPINC
        (["^CPIN: SIM PIN,3,10,3,10,3"], 3),  # Huawei AT^CPIN? (times, puk, pin, puk2, pin2)
        (["^CPIN: READY,,10,2,10,3"], 2),
        (["+SPIC: 1,10,3,10"], 1),  # SIMCom AT+SPIC
        (["+CPINR: SIM PIN,2,3"], 2),  # TS 27.007 §8.65
        (["#PCT: 3"], 3),  # Telit
        (["+CPINR: SIM PIN2,3,3"], None),
        ([], None),
    ],
    ids=["quectel", "huawei_sim_pin", "huawei_ready", "simcom_spic", "cpinr", "telit", "pin2_only", "none"],
)
def test_pin_attempts(lines: list[str], left: int | None) -> None:
    assert p.parse_pin_attempts(lines) == left


@pytest.mark.parametrize(
    ("lines", "iccid"),
    [
        (["+ICCID: 898600C6112051005816"], "898600C6112051005816"),  # openLuat Air720UG log
        (["89014103211118510720"], "89014103211118510720"),  # SIM800 AT+CCID: bare line
        (['+QCCID: 89860318740228643657'], "89860318740228643657"),  # Quectel AT+QCCID
        (["+CCID: 8944500102198304826F"], "8944500102198304826"),  # trailing F filler
        # Huawei ^ICCID answers nibble-swapped (ModemManager plugins/huawei/mm-sim-huawei.c).
        (["^ICCID: 98681031098310024233"], "89860113903801202433"),
    ],
    ids=["air720ug", "sim800_bare", "quectel_qccid", "filler_f", "huawei_swapped"],
)
def test_iccid(lines: list[str], iccid: str) -> None:
    assert p.parse_iccid(lines) == iccid


def test_crsm_iccid() -> None:
    assert p.parse_crsm_iccid('+CRSM: 144,0,"98681031098310024233"') == "89860113903801202433"
    with pytest.raises(ValueError):
        p.parse_crsm_iccid('+CRSM: 148,4,""')


def test_imei_variants() -> None:
    assert p.parse_imei(["866714043053668"]) == "866714043053668"  # openLuat Air720UG, AT+CGSN
    assert p.parse_imei(['+CGSN: "869170031234566"']) == "869170031234566"
    with pytest.raises(ValueError):
        p.parse_imei(["ERROR-ish"])


def test_imsi() -> None:
    assert p.parse_imsi(["460022670845816"]) == "460022670845816"  # openLuat Air720UG


@pytest.mark.parametrize(
    ("line", "op"),
    [
        ('+COPS: 0,0,"NOS",7', "NOS"),  # luci-app-3ginfo-lite issue #135, Quectel EC200A
        ('+COPS: 0,2,"25099",7', "25099"),  # luci-app-modeminfo issue #45, EC25 numeric format
        ("+COPS: 0", ""),  # not registered
    ],
)
def test_cops(line: str, op: str) -> None:
    assert p.parse_cops(line) == op


def test_cnum() -> None:
    assert p.parse_cnum(['+CNUM: "","+15550000001",145']) == "+15550000001"
    assert p.parse_cnum(['+CNUM: "Own","4915112345678",145']) == "+4915112345678"
    assert p.parse_cnum([]) == ""


def test_plain_value_firmware_ec25() -> None:
    # gammu issue #492: AT+CGMR on an EC25.
    assert p.parse_plain_value(["EC25EFAR06A04M4G"], "+CGMR") == "EC25EFAR06A04M4G"
    assert p.parse_plain_value(['+CGMI: "SIMCOM INCORPORATED"'], "+CGMI") == "SIMCOM INCORPORATED"


# --- CNMI / USSD ---------------------------------------------------------------------


def test_cnmi_test_sim800() -> None:
    got = p.parse_cnmi_test("+CNMI: (0-3),(0-3),(0,2),(0-2),(0,1)")
    assert got == [{0, 1, 2, 3}, {0, 1, 2, 3}, {0, 2}, {0, 1, 2}, {0, 1}]


def test_cusd_huawei_packed_hex() -> None:
    # python-gammu issue #3: a Huawei stick answering *100# in packed GSM 7-bit hex.
    u = p.parse_cusd('+CUSD: 0,"A0E09A5E2FB3D9E539E858A7A3C3E2B25B07CAB9723150B12A7501",15')
    assert (u.status, u.dcs) == (0, 15)
    assert decode_response(u.text, u.dcs, packed_hex=True).strip() == "Aktuelles Guthaben: 9.91 EUR."


def test_cusd_request_huawei_packed() -> None:
    # python-gammu issue #3: AT+CUSD=1,"AA180C3602",15 is *100# packed.
    assert encode_request("*100#", packed_hex=True) == "AA180C3602"
    assert encode_request("*100#", packed_hex=False) == "*100#"


def test_cusd_ucs2_hex() -> None:
    # gammu issue #326: with AT+CSCS="UCS2" strings travel as UCS2 hex.
    u = p.parse_cusd('+CUSD: 0,"002A0031003000300023",72')
    assert decode_response(u.text, u.dcs, packed_hex=False) == "*100#"


def test_cusd_plain_text_digits_stay_text() -> None:
    # SIM800 answers in the TE character set; a numeric reply must not be taken for hex.
    u = p.parse_cusd('+CUSD: 0,"1234",15')
    assert decode_response(u.text, u.dcs, packed_hex=False) == "1234"


def test_cusd_multiline_and_commas() -> None:
    u = p.parse_cusd('+CUSD: 1,"Balance: 5,00 EUR\n1. Top up\n2. Exit",15')
    assert u.status == 1 and "1. Top up" in u.text and "5,00" in u.text


def test_cusd_status_only() -> None:
    assert p.parse_cusd("+CUSD: 4") == p.Ussd(4, "", None)


def test_split_fields_quotes() -> None:
    assert p.split_fields('"SM",1,"a,b",,x') == ["SM", "1", "a,b", "", "x"]


def test_iccid_huawei_not_swapped_when_already_natural() -> None:
    # Some Huawei firmware (and the emulator) answer ^ICCID in natural order already.
    assert p.parse_iccid(["^ICCID: 89860113903801202433"]) == "89860113903801202433"
