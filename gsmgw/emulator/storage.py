"""SMS storage of one emulated modem: the message memories ("SM", "ME", ...) and their slots."""

from __future__ import annotations

from dataclasses import dataclass

from gsmgw.emulator.syntax import AtFail

# TS 27.005 §3.1 <stat> in PDU mode and text mode.
STAT_TEXT = ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT", "ALL")


@dataclass
class StoredSms:
    stat: int
    """0 REC UNREAD, 1 REC READ, 2 STO UNSENT, 3 STO SENT (TS 27.005 §3.1)."""
    pdu: str
    """Hex PDU including the SMSC address field, as +CMGR/+CMGL show it."""
    is_status_report: bool = False

    @property
    def tpdu_length(self) -> int:
        raw = bytes.fromhex(self.pdu)
        return len(raw) - 1 - raw[0]


class Storage:
    """One message memory ("SM", "ME") with a fixed number of slots."""

    def __init__(self, name: str, capacity: int, first_index: int) -> None:
        if capacity < 1:
            raise ValueError(f"storage {name}: capacity must be >= 1, got {capacity}")
        self.name = name
        self.capacity = capacity
        self.first_index = first_index
        self.slots: list[StoredSms | None] = [None] * capacity

    @property
    def used(self) -> int:
        return sum(1 for s in self.slots if s is not None)

    def store(self, sms: StoredSms) -> int | None:
        for i, slot in enumerate(self.slots):
            if slot is None:
                self.slots[i] = sms
                return i + self.first_index
        return None

    def slot(self, index: int) -> int:
        i = index - self.first_index
        if not 0 <= i < self.capacity:
            raise AtFail("CMS", 321)
        return i

    def items(self) -> list[tuple[int, StoredSms]]:
        return [(i + self.first_index, s) for i, s in enumerate(self.slots) if s is not None]
