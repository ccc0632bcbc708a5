"""One sync run of one mailbox: cursors, batches, matcher and recorder callbacks.

See CONTRACT.md. In short, per folder: EXAMINE; a new UIDVALIDITY resets the cursor; UIDs above
the cursor are read in ascending batches: headers first, the ``matcher`` says which messages are
wanted, only those bodies are fetched (``BODY.PEEK[]``) and parsed, and the ``recorder`` stores
the items and the new cursor in one transaction. The mailbox is never modified.
"""
from __future__ import annotations

import time

from .errors import SyncError, classify
from .parse import parse_message
from .session import ImapSession
from .types import FolderState, SyncReport

__all__ = ["sync_mailbox", "CONNECTION_KINDS"]

# Kinds that mean the connection (or the account) is unusable: they stop the mailbox.
CONNECTION_KINDS = frozenset({
    "auth", "imap_disabled", "app_password", "oauth_revoked", "certificate", "tls", "dns",
    "refused", "timeout", "dropped", "over_quota", "throttled", "too_many_connections", "config",
})


def _past(deadline) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def sync_mailbox(config, folders=None, *, matcher, recorder, since=None, batch_size=200,
                 deadline=None, quota=None, session=None, max_attachment_bytes=None):
    """Sync ``folders`` (None → discover) of ``config``'s mailbox.

    ``matcher(list[HeaderInfo]) -> dict[uid, match]`` names the messages whose body is wanted;
    ``recorder(folder_state, [(HeaderInfo, ParsedMessage, match)], new_last_uid)`` stores them and
    the cursor in one transaction (it is called for every batch, even empty ones; and once with no
    items and ``new_last_uid=0`` when a folder's UIDVALIDITY changed and nothing is left to read).

    Returns ``(folders, report)``. A connection failure raises SyncError (the cursors of batches
    already handed to the recorder are in the returned/persisted state); a message that cannot be
    fetched or parsed is reported in ``report.errors`` and skipped.
    """
    report = SyncReport()
    own = session is None
    if own:
        session = ImapSession(config)
        session.connect()
    h0, b0 = session.headers_bytes, session.bodies_bytes
    remaining = quota
    try:
        if folders is None:
            folders = session.discover_folders()
        unchanged = _unchanged(session, folders)
        for fs in folders:
            if _past(deadline):
                report.stopped_early = True
                break
            if remaining is not None and remaining <= 0 and report.deferred:
                break
            if fs.name in unchanged:
                report.folders += 1
                continue
            try:
                cut = _sync_folder(session, fs, matcher, recorder, since, batch_size, deadline,
                                   report, remaining, max_attachment_bytes)
            except SyncError as e:
                if e.kind == "folder_missing":
                    e.folder = e.folder or fs.name
                    report.errors.append(e)
                    continue
                raise
            if remaining is not None:
                remaining = quota - report.recorded
            if cut or report.stopped_early:
                break
        return folders, report
    finally:
        report.headers_bytes += session.headers_bytes - h0
        report.bodies_bytes += session.bodies_bytes - b0
        if own:
            session.close()


def _unchanged(session, folders) -> set:
    """Names of the folders where nothing can be new: STATUS (one pipelined round trip, no
    folder opened) gives the cursor's UIDVALIDITY and UIDNEXT-1 at most the cursor. The others
    (and every folder of a server whose STATUS says less) are EXAMINEd as before."""
    known = [fs for fs in folders if fs.uidvalidity is not None]
    status_many = getattr(session, "status_many", None)
    if not known or status_many is None:
        return set()
    status = status_many([fs.name for fs in known])
    return {fs.name for fs in known if fs.name in status
            and status[fs.name][0] == fs.uidvalidity and status[fs.name][1] - 1 <= fs.last_uid}


def _sync_folder(session, fs: FolderState, matcher, recorder, since, batch_size, deadline,
                 report, remaining, max_attachment_bytes) -> bool:
    """Sync one folder; True when the quota cut the run."""
    uidvalidity, uidnext = session.examine(fs.name)
    report.folders += 1
    reset = False
    if fs.uidvalidity != uidvalidity:
        reset = fs.uidvalidity is not None
        fs.uidvalidity = uidvalidity
        fs.last_uid = 0
    top = uidnext - 1 if uidnext else None  # every UID up to here existed at EXAMINE time
    if top is not None and fs.last_uid and fs.last_uid >= top:
        uids = []  # nothing new: no SEARCH needed
    else:
        # `since` applies on every run, not only the first: older mail that reaches the folder
        # later (a migration, a moved message) stays outside the history window.
        uids = session.uids_after(fs.last_uid, since=since)
    if not uids:
        if top is not None and fs.last_uid < top:
            recorder(fs, [], top)  # skip what the window left out, or what was expunged
            fs.last_uid = top
        elif reset:
            recorder(fs, [], 0)
        return False
    batch_size = max(1, int(batch_size))
    for i in range(0, len(uids), batch_size):
        if _past(deadline):
            report.stopped_early = True
            return False
        batch = uids[i:i + batch_size]
        headers = session.fetch_headers(batch)
        report.headers_seen += len(headers)
        matches = matcher(headers) or {}
        wanted = [h for h in headers if h.uid in matches]
        report.matched += len(wanted)
        new_last = batch[-1]
        cut = False
        if remaining is not None and len(wanted) > remaining:
            cut_uid = wanted[remaining].uid
            report.deferred += len(wanted) - remaining
            wanted = wanted[:remaining]
            below = [u for u in batch if u < cut_uid]
            new_last = below[-1] if below else fs.last_uid
            cut = True
        items = _bodies(session, fs, wanted, matches, report, max_attachment_bytes)
        recorder(fs, items, new_last)
        fs.last_uid = new_last
        report.recorded += len(items)
        if remaining is not None:
            remaining -= len(items)
        if cut:
            return True
    if top is not None and fs.last_uid < top:
        # The whole folder below UIDNEXT was read: move the cursor over what the window left
        # out, so the next idle poll needs no SEARCH.
        recorder(fs, [], top)
        fs.last_uid = top
    return False


# Bodies are fetched in FETCH commands of at most this many bytes (by RFC822.SIZE from the
# header fetch; a bigger message alone): a batch never holds all its raw bodies at once.
BODY_CHUNK_BYTES = 4 << 20


def _bodies(session, fs, wanted, matches, report, max_attachment_bytes):
    items, chunk, size = [], [], 0
    for h in wanted:
        if chunk and size + (h.size or 0) > BODY_CHUNK_BYTES:
            items += _bodies_chunk(session, fs, chunk, matches, report, max_attachment_bytes)
            chunk, size = [], 0
        chunk.append(h)
        size += h.size or 0
    if chunk:
        items += _bodies_chunk(session, fs, chunk, matches, report, max_attachment_bytes)
    return items


def _bodies_chunk(session, fs, wanted, matches, report, max_attachment_bytes):
    if not wanted:
        return []
    uids = [h.uid for h in wanted]
    try:
        raws = session.fetch_raw(uids)
    except SyncError as e:
        if e.kind in CONNECTION_KINDS:
            raise
        # One bad message can make the whole FETCH fail: fetch one by one.
        raws = {}
        for uid in uids:
            try:
                raws.update(session.fetch_raw([uid]))
            except SyncError as one:
                if one.kind in CONNECTION_KINDS:
                    raise
                session.noop()  # a dead connection raises here: not the message's fault
                one.uid, one.folder = uid, fs.name
                report.errors.append(one)
    items = []
    for h in wanted:
        raw = raws.pop(h.uid, None)  # parsed: the raw bytes go at once
        if raw is None:
            if not any(getattr(e, "uid", None) == h.uid for e in report.errors):
                report.errors.append(SyncError(
                    "protocol", f"no body returned for UID {h.uid} (expunged meanwhile?)",
                    host=session.host, port=session.port, uid=h.uid, folder=fs.name,
                    retryable=False))
            continue
        try:
            parsed = parse_message(raw, max_attachment_bytes=max_attachment_bytes)
        except Exception as e:  # noqa: BLE001 - parse_message never raises; belt and braces
            err = classify(e)
            err.kind, err.uid, err.folder, err.retryable = "parse", h.uid, fs.name, False
            report.errors.append(err)
            continue
        items.append((h, parsed, matches[h.uid]))
    return items
