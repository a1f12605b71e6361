"""Modem pool: supervision (:mod:`~gsmgw.pool.supervisor`), the send pipeline
(:mod:`~gsmgw.pool.pipeline`), inbound SMS, status reports, limits and routing."""

from gsmgw.pool.driver import Driver, DriverFactory, NoPortYet, default_driver_factory
from gsmgw.pool.slot import ModemSlot
from gsmgw.pool.supervisor import Pool

__all__ = ["Driver", "DriverFactory", "ModemSlot", "NoPortYet", "Pool", "default_driver_factory"]
