"""The command table of one emulated modem: extended command name -> handler.

General commands (identification, SIM, registration, operator, USSD, power) are
handled here; the SMS service (TS 27.005) is in :mod:`gsmgw.emulator.messaging` and
joins the table through :meth:`SmsService.handlers`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from gsmgw.emulator.syntax import AtFail, Handler, gsm7_pack_hex, gsm7_unpack_hex, int_arg, unquote

if TYPE_CHECKING:
    from gsmgw.emulator.modem import EmulatedModem


def build_command_table(modem: EmulatedModem) -> dict[str, Handler]:
    general = GeneralCommands(modem)
    return {**general.handlers(), **modem.sms.handlers(), **general.vendor_handlers()}


def ident(value: Callable[[], str], *, forms: tuple[str, ...] = ("exec",)) -> Handler:
    """An identification command: one line, no arguments."""

    async def handler(kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return []
        if kind not in forms:
            raise AtFail()
        return [value()]

    return handler


def setting(name: str, default: str, supported: str) -> Handler:
    """A plain setting: stored and read back, no effect on the emulation."""
    values = {"value": default}

    async def handler(kind: str, args: list[str]) -> list[str]:
        if kind == "read":
            return [f"{name}: {values['value']}"]
        if kind == "test":
            return [f"{name}: {supported}"]
        if kind == "set":
            if not all(re.fullmatch(r"\d*", a) for a in args):
                raise AtFail()
            values["value"] = ",".join(args)
        return []

    return handler


class GeneralCommands:
    def __init__(self, modem: EmulatedModem) -> None:
        self.m = modem

    def handlers(self) -> dict[str, Handler]:
        m = self.m
        p = m.personality
        pad = p.ident_padding
        return {
            "+CGMI": ident(lambda: p.cgmi_prefix + pad + p.manufacturer),
            "+GMI": ident(lambda: pad + p.manufacturer),
            "+CGMM": ident(lambda: p.cgmm_prefix + pad + p.model),
            "+GMM": ident(lambda: pad + p.model),
            "+CGMR": ident(lambda: p.cgmr_prefix + pad + p.revision),
            "+GMR": ident(lambda: pad + p.revision),
            "+CGSN": ident(lambda: pad + m.imei),
            "+GSN": ident(lambda: pad + m.imei),
            "+GCAP": ident(lambda: "+GCAP: +CGSM"),
            "+CIMI": self._cimi,
            "+CNUM": self._cnum,
            "+CMEE": self._cmee,
            "+CPIN": self._cpin,
            "+CSQ": self._csq,
            "+CREG": self.make_xreg("+CREG"),
            "+COPS": self._cops,
            "+CUSD": self._cusd,
            "+CFUN": self._cfun,
            "+CSCS": self._cscs,
            "+CSDH": setting("+CSDH", "0", "(0,1)"),
            "+IPR": setting("+IPR", "115200", "(),(0,9600,19200,38400,57600,115200,230400,460800)"),
            "+IFC": setting("+IFC", "0,0", "(0-2),(0-2)"),
            "+CMER": setting("+CMER", "0,0,0,0,0", "(0-3),(0),(0),(0-2),(0,1)"),
            "+CLIP": setting("+CLIP", "0,1", "(0,1)"),
        }

    def vendor_handlers(self) -> dict[str, Handler]:
        """Personality-specific names: ICCID commands, +CGREG/+CEREG, the Huawei ^CURC switch."""
        m = self.m
        p = m.personality
        h: dict[str, Handler] = {}
        for cmd, prefix in p.iccid_commands:
            # Huawei spells it AT^ICCID? (read form); SIMCom/Quectel use the action form.
            h[cmd] = ident(lambda prefix=prefix: prefix + p.ident_padding + m.iccid,  # type: ignore[misc]
                           forms=("read",) if cmd.startswith("^") else ("exec",))
        for cmd in p.extra_registration_commands:
            h[cmd] = self.make_xreg(cmd)
        if p.curc_command:
            h[p.curc_command] = self.curc
        return h

    # --- identity and SIM ----------------------------------------------------------

    async def _cimi(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return []
        if kind != "exec":
            raise AtFail()
        self.m.require_sim()
        return [self.m.imsi]

    async def _cnum(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        if kind == "test":
            return []
        if kind != "exec":
            raise AtFail()
        m.require_sim()
        ton = 145 if m.number.startswith("+") else 129
        return [f'+CNUM: "","{m.number}",{ton}']

    async def _cmee(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        if kind == "read":
            return [f"+CMEE: {m.cmee}"]
        if kind == "test":
            return ["+CMEE: (0-2)"]
        if kind == "set":
            m.cmee = int_arg(args, 0, 0, hi=2)
            return []
        m.cmee = 0
        return []

    async def _cpin(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        if kind == "test":
            return []
        if kind == "read":
            if m.sim_state == "BLOCKED":
                raise AtFail("CME", 13)
            return [f"+CPIN: {m.sim_state}"]
        if kind != "set" or not args or not args[0]:
            raise AtFail()
        code = unquote(args[0])
        if m.sim_state == "READY":
            # TS 27.007 §8.3: a PIN entered when none is asked for is an error.
            raise AtFail("CME", 3)
        if m.sim_state == "BLOCKED":
            raise AtFail("CME", 13)
        if m.sim_state == "SIM PIN":
            if code != m.pin:
                m.pin_tries_left -= 1
                if m.pin_tries_left <= 0:
                    m.sim_state = "SIM PUK"
                    m.urc("+CPIN: SIM PUK", force=True)
                raise AtFail("CME", 16)
            self._sim_ready()
            return []
        # SIM PUK: AT+CPIN=<puk>,<newpin>
        if len(args) < 2 or not re.fullmatch(r"\d{4,8}", unquote(args[1])):
            raise AtFail("CME", 12)
        if code != m.puk:
            m.puk_tries_left -= 1
            if m.puk_tries_left <= 0:
                m.sim_state = "BLOCKED"
            raise AtFail("CME", 16)
        m.pin = unquote(args[1])
        self._sim_ready()
        return []

    def _sim_ready(self) -> None:
        m = self.m
        m.sim_state = "READY"
        m.pin_tries_left = 3
        m.puk_tries_left = 10
        for line in m.personality.after_pin_urcs:
            m.urc(line)
        m.spawn(m.radio.register())

    # --- radio ----------------------------------------------------------------------

    async def _csq(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return ["+CSQ: (0-31,99),(0-7,99)"]
        if kind != "exec":
            raise AtFail()
        return [f"+CSQ: {self.m.radio.rssi()},99"]

    def make_xreg(self, name: str) -> Handler:
        """+CREG / +CGREG / +CEREG: <n> per command, one shared <stat>."""

        async def handler(kind: str, args: list[str]) -> list[str]:
            return await self._xreg(name, kind, args)

        return handler

    async def _xreg(self, name: str, kind: str, args: list[str]) -> list[str]:
        m = self.m
        n = m.creg_n if name == "+CREG" else m.cgreg_n.get(name, 0)
        if kind == "test":
            return [f"{name}: (0-2)"]
        if kind == "read":
            stat = m.registration if m.sim_state == "READY" else 0
            if n == 2 and m.registered:
                return [f'{name}: {n},{stat},"1A2B","00C0FFEE"']
            return [f"{name}: {n},{stat}"]
        if kind == "set":
            n = int_arg(args, 0, 0, hi=2)
            if name == "+CREG":
                m.creg_n = n
            else:
                m.cgreg_n[name] = n
            return []
        raise AtFail()

    async def _cops(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        net = m.network
        if kind == "test":
            return [f'+COPS: (2,"{m.operator}","{net.operator_short}","{net.mcc_mnc}"),,(0-4),(0-2)']
        if kind == "read":
            if not m.registered:
                return ["+COPS: 0"]
            name = {0: m.operator, 1: net.operator_short, 2: net.mcc_mnc}[m.cops_format]
            act = "" if m.personality.act is None else f",{m.personality.act}"
            return [f'+COPS: 0,{m.cops_format},"{name}"{act}']
        if kind == "set":
            mode = int_arg(args, 0, 0, hi=4)
            if len(args) > 1 and args[1] != "":
                m.cops_format = int_arg(args, 1, hi=2)
            if mode == 2:
                m.radio.set_registration(0)
            elif mode in (0, 1, 4) and not m.registered and m.sim_state == "READY":
                m.spawn(m.radio.register())
            return []
        return []

    async def _cscs(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        if kind == "test":
            return ['+CSCS: ("IRA","GSM","UCS2")']
        if kind == "read":
            return [f'+CSCS: "{m.cscs}"']
        if kind == "set":
            cs = unquote(args[0]).upper() if args else ""
            if cs not in ("IRA", "GSM", "UCS2"):
                raise AtFail("CME", 4)
            m.cscs = cs
            return []
        raise AtFail()

    # --- USSD, CFUN, misc ----------------------------------------------------------

    async def _cusd(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        if kind == "test":
            return ["+CUSD: (0-2)"]
        if kind == "read":
            return [f"+CUSD: {m.cusd_n}"]
        if kind != "set":
            raise AtFail()
        n = int_arg(args, 0, 0, hi=2)
        m.cusd_n = 0 if n == 2 else n
        if len(args) < 2 or args[1] == "":
            return []
        m.require_sim()
        if not m.registered:
            raise AtFail("CME", 30)
        code = unquote(args[1])
        if m.personality.ussd_hex_gsm7:
            code = gsm7_unpack_hex(code)
        reply = m.network.ussd(code, m.behaviour.ussd_reply)
        m.spawn(self._ussd_reply(reply))
        return []

    async def _ussd_reply(self, reply: str | None) -> None:
        m = self.m
        await asyncio.sleep(0.01)
        if reply is None:
            m.urc("+CUSD: 4")  # TS 27.007 §7.15 <m> 4: operation not supported
            return
        if m.personality.ussd_hex_gsm7:
            reply = gsm7_pack_hex(reply)
        m.urc(f'+CUSD: 0,"{reply}",15')

    async def _cfun(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        if kind == "test":
            return ["+CFUN: (0,1,4),(0,1)"]
        if kind == "read":
            return [f"+CFUN: {m.cfun}"]
        if kind != "set":
            raise AtFail()
        fun = int_arg(args, 0, hi=4)
        if fun not in (0, 1, 4):
            raise AtFail("CME", 4)
        reset = int_arg(args, 1, 0, hi=1)
        if reset:
            if fun != 1:
                raise AtFail("CME", 4)
            # OK first, then the module reboots (TS 27.007 §8.2 <rst> 1: reset the MT
            # before setting <fun>; SIM800/EC25 print the boot URCs again).
            m.spawn(self._reset_after_ok())
            return []
        m.cfun = fun
        if fun == 1:
            m.spawn(m.radio.register())
        else:
            m.radio.set_registration(0)
        return []

    async def _reset_after_ok(self) -> None:
        await asyncio.sleep(0.005)
        self.m.radio.set_registration(0)
        self.m.power_cycle()

    async def curc(self, kind: str, args: list[str]) -> list[str]:
        """Huawei AT^CURC: switch the periodic ^RSSI/^MODE/^BOOT reports on or off."""
        m = self.m
        if kind == "read":
            return [f"^CURC: {m.curc}"]
        if kind == "set":
            m.curc = int_arg(args, 0, hi=1)
            return []
        if kind == "test":
            return ["^CURC: (0-1)"]
        raise AtFail()
