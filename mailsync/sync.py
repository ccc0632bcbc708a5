"""One sync run of one mailbox: cursors, batches, matcher and recorder callbacks.

See CONTRACT.md. In short, per folder: EXAMINE; a new UIDVALIDITY resets the cursor; UIDs above
the cursor are read in ascending batches: headers first, the ``matcher`` says which messages are
wanted, only those bodies are fetched (``BODY.PEEK``) and parsed, and the ``recorder`` stores
the items and the new cursor in one transaction. The mailbox is never modified.

Bodies are read in *groups* (:func:`read_bodies`): ordinary messages together, up to
``BODY_CHUNK_BYTES`` a FETCH; a large message (``structure.LARGE_MESSAGE_BYTES``, or over the
message limit) alone, part by part; a *suspect* (a message that was being read when an earlier
sync died) alone. ``before_bodies(folder_state, uids)`` is told which UIDs are about to be
read, so that the caller can remember them across a crash. A message that cannot be fetched,
read or is refused by the limits becomes a message-level ``SyncError`` in ``report.errors``
(with its ``HeaderInfo``) and is left out: the cursor moves over it, the others go on.
"""

from __future__ import annotations

import time

from . import structure
from .errors import SyncError, classify
from .parse import parse_message
from .text import clean_line
from .types import Limits, SyncReport

__all__ = [
    "sync_mailbox",
    "read_uids",
    "read_bodies",
    "changed_folders",
    "CONNECTION_KINDS",
    "BODY_CHUNK_BYTES",
]

# Kinds that mean the connection (or the account) is unusable: they stop the mailbox.
CONNECTION_KINDS = frozenset(
    {
        "auth",
        "imap_disabled",
        "app_password",
        "oauth_revoked",
        "certificate",
        "tls",
        "dns",
        "refused",
        "timeout",
        "dropped",
        "over_quota",
        "throttled",
        "too_many_connections",
        "config",
    }
)

# Bodies are fetched in FETCH commands of at most this many bytes (by RFC822.SIZE from the
# header fetch; a bigger message alone): a batch never holds all its raw bodies at once.
BODY_CHUNK_BYTES = 4 << 20


def _past(deadline) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def sync_mailbox(
    config,
    folders=None,
    *,
    matcher,
    recorder,
    since=None,
    batch_size=200,
    deadline=None,
    quota=None,
    session=None,
    max_attachment_bytes=None,
    limits: Limits | None = None,
    skip_uids=None,
    suspects=None,
    before_bodies=None,
    on_errors=None,
):
    """Sync ``folders`` (None → discover) of ``config``'s mailbox.

    ``matcher(list[HeaderInfo]) -> dict[uid, match]`` names the messages whose body is wanted;
    ``recorder(folder_state, [(HeaderInfo, ParsedMessage, match)], new_last_uid)`` stores them and
    the cursor in one transaction (it is called for every group of bodies and for every batch,
    even empty ones; and once with no items and ``new_last_uid=0`` when a folder's UIDVALIDITY
    changed and nothing is left to read).

    ``limits``: see :class:`~.types.Limits`. ``skip_uids``: ``{folder name: {uid: (kind,
    detail)}}`` of messages never to read: a wanted one becomes a message-level error of that
    kind. ``suspects``: ``{folder name: set(uid)}`` of messages to read alone.
    ``before_bodies(folder_state, uids)``: called before each group of bodies is fetched;
    ``on_errors(folder_state, errors)``: see the module docstring.

    Returns ``(folders, report)``. A connection failure raises SyncError (the cursors of batches
    already handed to the recorder are in the returned/persisted state); a message that cannot be
    fetched, parsed or is refused is reported in ``report.errors`` and skipped.
    """
    if limits is None:
        limits = Limits(max_attachment_bytes=max_attachment_bytes)
    report = SyncReport()
    own = session is None
    if own:
        from .session import ImapSession

        session = ImapSession(config)
        session.connect()
    h0, b0 = session.headers_bytes, session.bodies_bytes
    remaining = quota
    try:
        if folders is None:
            folders = session.discover_folders()
        changed = {fs.name for fs in changed_folders(session, folders)}
        for fs in folders:
            if _past(deadline):
                report.stopped_early = True
                break
            if remaining is not None and remaining <= 0 and report.deferred:
                break
            if fs.name not in changed:
                report.folders += 1
                continue
            reader = _Reader(
                session,
                fs,
                limits,
                report,
                (suspects or {}).get(fs.name, ()),
                before_bodies,
                on_errors,
            )
            try:
                cut = _sync_folder(
                    session,
                    fs,
                    matcher,
                    recorder,
                    since,
                    batch_size,
                    deadline,
                    report,
                    remaining,
                    reader,
                    dict((skip_uids or {}).get(fs.name, {})),
                )
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


def changed_folders(session, folders, unanswered_changed=True) -> list:
    """The FolderStates of ``folders`` where something may be new: STATUS (one pipelined round
    trip, no folder opened) says UIDVALIDITY changed or UIDNEXT moved above the cursor. A folder
    that was never synced counts as changed; so does one that STATUS says nothing about (its
    STATUS failed: the sync's EXAMINE reports why), unless ``unanswered_changed`` is False (fast
    arrival: a deleted folder is the regular sync's to report, not a reason to sync every
    minute). A dead connection raises SyncError."""
    known = [fs for fs in folders if fs.uidvalidity is not None]
    status_many = getattr(session, "status_many", None)
    status = status_many([fs.name for fs in known]) if known and status_many else {}
    return [
        fs
        for fs in folders
        if not _unchanged(fs, status.get(fs.name))
        and (unanswered_changed or fs.uidvalidity is None or fs.name in status)
    ]


def _unchanged(fs, status) -> bool:
    """Whether STATUS's ``(UIDVALIDITY, UIDNEXT)`` of ``fs`` (None: no answer) leaves nothing
    new above its cursor."""
    return (
        status is not None and status[0] == fs.uidvalidity and status[1] - 1 <= (fs.last_uid or 0)
    )


def _sync_folder(
    session, fs, matcher, recorder, since, batch_size, deadline, report, remaining, reader, skip
) -> bool:
    """Sync one folder; True when the quota cut the run."""
    uidvalidity, uidnext = session.examine(fs.name)
    report.folders += 1
    reset = False
    if fs.uidvalidity != uidvalidity:
        reset = fs.uidvalidity is not None
        fs.uidvalidity = uidvalidity
        fs.last_uid = 0
        if reset:  # UIDs of the old UIDVALIDITY mean nothing now
            skip, reader.suspects = {}, set()
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
    if _scan(
        reader,
        uids,
        matcher,
        recorder,
        batch_size=batch_size,
        cursor=True,
        skip=skip,
        deadline=deadline,
        remaining=remaining,
    ):
        return True
    if top is not None and fs.last_uid < top and not report.stopped_early:
        # The whole folder below UIDNEXT was read (the deadline did not stop the scan): move
        # the cursor over what the window left out, so the next idle poll needs no SEARCH.
        recorder(fs, [], top)
        fs.last_uid = top
    return False


def read_uids(
    session,
    fs,
    uids,
    *,
    matcher,
    recorder=None,
    limits: Limits | None = None,
    batch_size=200,
    before_bodies=None,
    on_errors=None,
    bodies=True,
):
    """Read the given ``uids`` of the folder ``fs`` (already EXAMINEd, same UIDVALIDITY): the
    same header → matcher → bodies → recorder steps as a sync, without moving any cursor
    (``recorder`` gets ``new_last_uid=None``, and is called only with items or errors). For
    late linking, retries of skipped messages and dry runs. ``bodies=False``: headers and
    matcher only, no body is fetched and ``recorder`` is never called (it may be None).
    Returns ``(seen, matched, report)``: the UIDs the server still has and those the matcher
    wanted."""
    report = SyncReport()
    reader = _Reader(session, fs, limits or Limits(), report, (), before_bodies, on_errors)
    seen, matched = set(), set()

    def match(headers):
        matches = matcher(headers) or {}
        seen.update(h.uid for h in headers)
        matched.update(h.uid for h in headers if h.uid in matches)
        return matches

    _scan(reader, sorted(set(uids)), match, recorder, batch_size=batch_size, bodies=bodies)
    return seen, matched, report


def _scan(
    reader,
    uids,
    matcher,
    recorder,
    *,
    batch_size,
    cursor=False,
    bodies=True,
    skip=None,
    deadline=None,
    remaining=None,
) -> bool:
    """The read loop of one folder: ``uids`` (ascending) in batches of ``batch_size``; per batch
    the headers, the ``matcher``, then the wanted bodies group by group (:meth:`_Reader.groups`:
    chunked, one by one when a FETCH fails) handed to the ``recorder``.

    ``cursor``: every group's recorder call carries the UID the folder is read up to (the last
    one: the batch's end, or just below the first message over ``remaining``) and ``fs.last_uid``
    follows; without it ``None``, and the recorder is called only with items or errors.
    ``bodies=False``: no body is read. ``skip``, ``deadline``: see :func:`sync_mailbox`;
    ``remaining``: how many items may still be recorded (None: no limit). True when
    ``remaining`` cut the folder."""
    for batch in _batches(uids, batch_size):
        if _past(deadline):
            reader.report.stopped_early = True
            return False
        wanted, matches = _wanted(reader, batch, matcher, skip or {})
        new_last = batch[-1] if cursor else None
        cut = remaining is not None and len(wanted) > remaining
        if cut:
            wanted, new_last = _defer(reader, batch, wanted, remaining, new_last)
        if bodies:
            recorded = _record_groups(reader, recorder, wanted, matches, new_last)
            remaining = None if remaining is None else remaining - recorded
        if cut:
            return True
    return False


def _batches(uids, batch_size):
    size = max(1, int(batch_size))
    return (uids[i : i + size] for i in range(0, len(uids), size))


def _wanted(reader, batch, matcher, skip):
    """``(wanted headers, matches)`` of the UIDs ``batch``: their headers fetched and matched;
    a wanted message in ``skip`` becomes its message-level error instead."""
    headers = reader.session.fetch_headers(batch)
    reader.report.headers_seen += len(headers)
    matches = matcher(headers) or {}
    for h in headers:
        if h.uid in matches and h.uid in skip:
            reader.error(*skip[h.uid], h)
    wanted = [h for h in headers if h.uid in matches and h.uid not in skip]
    reader.report.matched += len(wanted)
    return wanted, matches


def _defer(reader, batch, wanted, remaining, new_last):
    """``(wanted, new_last)`` cut to the first ``remaining`` messages: the rest is deferred,
    the cursor (when there is one) stops just below the first deferred message."""
    cut_uid = wanted[remaining].uid
    reader.report.deferred += len(wanted) - remaining
    if new_last is not None:
        below = [u for u in batch if u < cut_uid]
        new_last = below[-1] if below else reader.fs.last_uid
    return wanted[:remaining], new_last


def _record_groups(reader, recorder, wanted, matches, new_last) -> int:
    """Read the bodies of ``wanted`` group by group and hand each group to ``recorder`` (see
    :func:`_scan`); the number of items recorded."""
    fs, recorded = reader.fs, 0
    for items, last in reader.groups(wanted, matches, new_last):
        if reader.flush_errors() or items or last is not None:
            recorder(fs, items, last)
        if last is not None:
            fs.last_uid = max(fs.last_uid, last)
        reader.report.recorded += len(items)
        recorded += len(items)
    return recorded


def read_bodies(session, fs, headers, matches, report, limits: Limits | None = None):
    """``[(HeaderInfo, ParsedMessage, match)]`` of ``headers`` (all read, grouped as a sync
    reads them); failures go to ``report.errors``."""
    reader = _Reader(session, fs, limits or Limits(), report, (), None, None)
    return [item for items, _last in reader.groups(headers, matches, None) for item in items]


class _Reader:
    """Reads the bodies of wanted messages of one folder, group by group."""

    def __init__(self, session, fs, limits, report, suspects, before_bodies, on_errors):
        self.session = session
        self.fs = fs
        self.limits = limits
        self.report = report
        self.suspects = set(suspects or ())
        self.before_bodies = before_bodies
        self.on_errors = on_errors
        self.pending = []  # message-level errors not yet handed to on_errors

    def error(self, kind, detail, header, retryable=False):
        """A message-level error about ``header``'s message: reported, handed to
        ``on_errors`` with the next recorder call."""
        self.add(
            SyncError(
                kind,
                detail,
                host=self.session.host,
                port=self.session.port,
                uid=header.uid,
                folder=self.fs.name,
                header=header,
                retryable=retryable,
            )
        )

    def add(self, error):
        self.report.errors.append(error)
        self.pending.append(error)

    def flush_errors(self) -> bool:
        """Hand the pending errors to ``on_errors``; whether there were some."""
        pending, self.pending = self.pending, []
        if pending and self.on_errors is not None:
            self.on_errors(self.fs, pending)
        return bool(pending)

    def _alone(self, header) -> bool:
        return header.uid in self.suspects or self._large(header)

    def _large(self, header) -> bool:
        size = header.size or 0
        limit = self.limits.max_message_bytes
        return size > structure.LARGE_MESSAGE_BYTES or bool(limit and size > limit)

    def groups(self, wanted, matches, new_last):
        """Yield ``(items, last_uid)`` per group, ascending; ``last_uid`` covers everything up
        to the next group (the last one: ``new_last``). No wanted message: one empty group."""
        groups, chunk, size = [], [], 0
        for h in wanted:
            if self._alone(h):
                if chunk:
                    groups.append(chunk)
                groups.append([h])
                chunk, size = [], 0
                continue
            if chunk and size + (h.size or 0) > BODY_CHUNK_BYTES:
                groups.append(chunk)
                chunk, size = [], 0
            chunk.append(h)
            size += h.size or 0
        if chunk:
            groups.append(chunk)
        if not groups:
            yield [], new_last
            return
        for index, group in enumerate(groups):
            if new_last is None:
                last = None
            elif index + 1 < len(groups):
                last = groups[index + 1][0].uid - 1
            else:
                last = new_last
            if self.before_bodies is not None:
                self.before_bodies(self.fs, [h.uid for h in group])
            yield self._read(group, matches), last

    def _read(self, group, matches):
        if len(group) == 1 and self._large(group[0]):
            parsed = self._read_large(group[0])
            return self._items(group, {group[0].uid: parsed} if parsed else {}, matches)
        raws = self._fetch_raw([h.uid for h in group], {h.uid: h for h in group})
        parsed = {}
        for h in group:
            raw = raws.pop(h.uid, None)  # parsed: the raw bytes go at once
            if raw is not None:
                parsed[h.uid] = parse_message(raw, limits=self.limits)
            del raw
        return self._items(group, parsed, matches)

    def _items(self, group, parsed, matches):
        items = []
        for h in group:
            message = parsed.get(h.uid)
            if message is None:
                if not any(getattr(e, "uid", None) == h.uid for e in self.pending):
                    self.error(
                        "protocol", f"no body returned for UID {h.uid} (expunged meanwhile?)", h
                    )
                continue
            if message.refused:
                self.error(*message.refused, h)
                continue
            items.append((h, message, matches[h.uid]))
        return items

    def _fetch_raw(self, uids, headers):
        session = self.session
        try:
            return session.fetch_raw(uids)
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
                one.uid, one.folder, one.header = uid, self.fs.name, headers[uid]
                self.add(one)
        return raws

    def _read_large(self, header):
        """A large message part by part; without a usable structure, whole (within the message
        limit) or its header alone (over it)."""
        try:
            return structure.fetch_parsed(self.session, header, self.limits)
        except SyncError as e:
            if e.kind in CONNECTION_KINDS:
                raise
            self.session.noop()
            problem = e
        except structure.StructureUnavailable as e:
            problem = e
        except Exception as e:  # noqa: BLE001 - a bug of the part walk must not stop the mailbox
            problem = classify(e)
        limit = self.limits.max_message_bytes
        try:
            if limit and (header.size or 0) > limit:
                parsed = structure.fetch_header_only(self.session, header)
            else:
                raw = self.session.fetch_raw([header.uid]).get(header.uid)
                parsed = parse_message(raw, limits=self.limits) if raw is not None else None
        except SyncError as e:
            if e.kind in CONNECTION_KINDS:
                raise
            e.uid, e.folder, e.header = header.uid, self.fs.name, header
            self.add(e)
            return None
        if parsed is not None:
            parsed.defects.append(
                clean_line(f"read whole: the part-by-part read failed ({problem})", 300)
            )
        return parsed
