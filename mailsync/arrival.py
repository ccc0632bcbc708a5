"""Cheap "is there new mail?" check for the fast-arrival cron: one IMAP STATUS per folder.

STATUS answers UIDNEXT and UIDVALIDITY without selecting the folder; a folder needs a sync when
its UIDVALIDITY changed or UIDNEXT moved above the stored cursor.
"""
from __future__ import annotations

from .errors import SyncError

__all__ = ["folder_status", "changed_folders"]


def folder_status(session, name: str) -> tuple[int | None, int | None]:
    """(UIDVALIDITY, UIDNEXT) of ``name`` through STATUS (raises SyncError)."""
    try:
        info = session._call(session._c.folder_status, name, ["UIDNEXT", "UIDVALIDITY"])
    except SyncError as e:
        e.folder = e.folder or name
        raise
    uidvalidity = info.get(b"UIDVALIDITY")
    uidnext = info.get(b"UIDNEXT")
    return (int(uidvalidity) if uidvalidity is not None else None,
            int(uidnext) if uidnext is not None else None)


def changed_folders(session, folders) -> list:
    """The FolderStates of ``folders`` that hold mail above their cursor (or were reset)."""
    changed = []
    for fs in folders:
        uidvalidity, uidnext = folder_status(session, fs.name)
        if uidvalidity is None or uidnext is None:
            changed.append(fs)  # the server did not say: let the sync look
        elif fs.uidvalidity != uidvalidity or uidnext - 1 > (fs.last_uid or 0):
            changed.append(fs)
    return changed
