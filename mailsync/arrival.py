"""Cheap "is there new mail?" check for the fast-arrival cron: STATUS only, no folder opened.

STATUS answers UIDNEXT and UIDVALIDITY without selecting the folder; a folder needs a sync when
its UIDVALIDITY changed or UIDNEXT moved above the stored cursor. The sync asks the same
question before opening each folder: both use :func:`.sync.changed_folders`.
"""

from __future__ import annotations

from .sync import changed_folders

__all__ = ["changed_folders"]
