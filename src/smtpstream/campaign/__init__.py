"""Campaigns: durable, resumable bulk jobs with a journal, retries, progress and a report.

``Campaign(journal="run.db", server=..., connections=...).run(read_manifest("rows.csv"),
Template(from_, subject, text))`` journals every row, sends what is due and
returns the counts per state; running it again resumes. See
:mod:`.runner` for the order of a run and :mod:`.journal` for the rule
that makes it safe to kill.
"""
from .journal import (MESSAGE_STATES, RECIPIENT_STATES, REPORT_FIELDS, Journal, JournalError, JournalWriteError,
                      open_journal)
from .manifest import Manifest, ManifestError, Row, read_manifest
from .retry import DEFAULT_DELAYS, RetrySchedule
from .runner import Campaign, CampaignError, CampaignStopped
from .template import Template, TemplateError, message_id_for

__all__ = [
    "Campaign", "CampaignError", "CampaignStopped", "Template", "TemplateError", "RetrySchedule",
    "DEFAULT_DELAYS", "read_manifest", "Manifest", "ManifestError", "Row", "Journal", "JournalError",
    "JournalWriteError",
    "MESSAGE_STATES", "RECIPIENT_STATES", "REPORT_FIELDS", "message_id_for", "open_journal",
]
