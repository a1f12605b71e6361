"""gsmgw: an on-premises SMS gateway for a pool of GSM/LTE modems."""

__version__ = "0.1.0"
