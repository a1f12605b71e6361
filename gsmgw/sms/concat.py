"""Reassembly of concatenated SMS (TS 23.040 §9.2.3.24.1/.8).

Parts are keyed by (sender, reference, total); they may arrive out of order and
twice (a +CMTI and the periodic +CMGL sweep can both deliver the same part).
UCS-2 parts are joined as octets before decoding, so a surrogate pair split across
parts by a foreign encoder still decodes to one character.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from gsmgw.domain import Encoding
from gsmgw.sms.pdu import Deliver
from gsmgw.sms.ucs2 import decode_ucs2

PartKey = tuple[str, int, int]  # (sender, reference, total)


@dataclass(frozen=True, slots=True)
class ReassembledMessage:
    sender: str
    text: str
    encoding: Encoding
    parts: tuple[Deliver, ...]  # in sequence order (only those received)
    complete: bool
    reference: int | None = None
    total: int = 1
    missing: tuple[int, ...] = ()  # sequence numbers never received
    first_received_at: float = 0.0

    @property
    def scts(self) -> datetime.datetime:
        return self.parts[0].scts

    @property
    def user_data(self) -> bytes:
        return b"".join(p.user_data for p in self.parts)


@dataclass(slots=True)
class _Pending:
    first_seen: float
    parts: dict[int, Deliver] = field(default_factory=dict)


def _join_text(parts: list[Deliver]) -> str:
    if parts and all(p.encoding is Encoding.UCS2 and not p.compressed for p in parts):
        return decode_ucs2(b"".join(p.user_data for p in parts))
    return "".join(p.text for p in parts)


class Reassembler:
    """Collects parts until a message is complete. Pure: the caller passes ``now``."""

    def __init__(self) -> None:
        self._pending: dict[PartKey, _Pending] = {}
        # Recently completed messages: a late duplicate of one of their parts (same
        # sequence, same user data) is ignored instead of starting a ghost message.
        self._completed: dict[PartKey, tuple[float, dict[int, bytes]]] = {}

    def __len__(self) -> int:
        """Number of incomplete messages waiting for parts."""
        return len(self._pending)

    def add(self, key_sender: str, part: Deliver, *, now: float) -> ReassembledMessage | None:
        """Add one part; returns the message once every part is here, else None.
        A message without a (valid) concatenation IE is complete at once."""
        c = part.concat
        if c is None:
            return ReassembledMessage(key_sender, part.text, part.encoding, (part,), True,
                                      first_received_at=now)
        key = (key_sender, c.reference, c.total)
        done = self._completed.get(key)
        if done is not None and done[1].get(c.sequence) == part.ud_raw:
            return None  # late duplicate of a message already returned
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(now)
        pending.parts.setdefault(c.sequence, part)  # duplicates ignored: first copy wins
        if len(pending.parts) < c.total:
            return None
        del self._pending[key]
        ordered = [pending.parts[i] for i in range(1, c.total + 1)]
        self._completed[key] = (now, {i: p.ud_raw for i, p in enumerate(ordered, start=1)})
        return ReassembledMessage(key_sender, _join_text(ordered), ordered[0].encoding, tuple(ordered),
                                  True, c.reference, c.total, (), pending.first_seen)

    def expired(self, *, now: float, timeout_s: float) -> list[ReassembledMessage]:
        """Give up on messages whose first part came more than ``timeout_s`` ago; they are
        returned (marked incomplete, with ``missing`` sequence numbers) so nothing is lost."""
        for key, (done_at, _) in list(self._completed.items()):
            if now - done_at >= timeout_s:
                del self._completed[key]
        out = []
        for key, pending in list(self._pending.items()):
            if now - pending.first_seen < timeout_s:
                continue
            del self._pending[key]
            sender, ref, total = key
            seqs = sorted(pending.parts)
            ordered = [pending.parts[i] for i in seqs]
            missing = tuple(i for i in range(1, total + 1) if i not in pending.parts)
            out.append(ReassembledMessage(sender, _join_text(ordered), ordered[0].encoding,
                                          tuple(ordered), False, ref, total, missing,
                                          pending.first_seen))
        return out
