"""The SMPP 3.4 door: the modem pool as an SMSC for ESMEs (Kannel, Jasmin, smpplib...).

- :mod:`gsmgw.smpp.pdu`: the PDU codec (pure); :mod:`gsmgw.smpp.message`: text,
  concatenation, times and receipts (pure).
- :mod:`gsmgw.smpp.session`: one connection's state machine; :mod:`gsmgw.smpp.server`:
  the listener, submits through the intake service, deliver_sm from the outbox.
"""

from gsmgw.smpp.server import SmppServer, SubmitPort, Submitted

__all__ = ["SmppServer", "SubmitPort", "Submitted"]
