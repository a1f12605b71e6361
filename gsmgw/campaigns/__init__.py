"""Contacts, groups and campaigns (issue 21 parts 1-2): a service the doors call
(``service``), CSV reading (``csvimport``, pure) and the runner that feeds running
campaigns into the queue through the intake service (``runner``). No aiohttp here."""

from gsmgw.campaigns.csvimport import ColumnMapping, ImportOptions
from gsmgw.campaigns.runner import CampaignRunner
from gsmgw.campaigns.service import (
    CampaignService,
    ContactsService,
    ImportReport,
    Validation,
    idempotency_key,
)

__all__ = [
    "CampaignRunner",
    "CampaignService",
    "ColumnMapping",
    "ContactsService",
    "ImportOptions",
    "ImportReport",
    "Validation",
    "idempotency_key",
]
