"""The e-mail door (issue 19): SMS → e-mail from the outbox (``forwarder``), and an SMTP
listener that turns mail to ``<number>@<domain>`` into SMS (``listener``).

Optional: ``pip install 'gsmgw[email]'`` (aiosmtpd, aiosmtplib, both pure Python)."""

from gsmgw.mail.forwarder import MailForwarder
from gsmgw.mail.listener import MailListener

__all__ = ["MailForwarder", "MailListener"]
