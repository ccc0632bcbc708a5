"""Plain value objects exchanged between the engine and its callers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

SECURITY_SSL = "ssl"
SECURITY_STARTTLS = "starttls"
SECURITY_NONE = "none"  # only allowed towards loopback

ROLE_INBOX = "inbox"
ROLE_SENT = "sent"
ROLE_ALL = "all"  # Gmail's All Mail

DIRECTION_SENT = "sent"
DIRECTION_RECEIVED = "received"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    security: str = SECURITY_SSL


@dataclass(frozen=True)
class MailboxConfig:
    """Everything needed to reach one user's mailbox. Holds secrets: never log it."""

    email: str
    imap: Endpoint
    login: str
    smtp: Endpoint | None = None
    smtp_login: str | None = None
    password: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)  # XOAUTH2 when set
    provider: str = "generic"  # generic | gmail | outlook
    timeout: float = 30.0
    # The network rule (netguard): what an administrator allowed beyond public servers.
    allowed_networks: str = ""

    def __repr__(self):  # never show secrets, even in tracebacks
        return (
            f"MailboxConfig(email={self.email!r}, imap={self.imap!r}, provider={self.provider!r})"
        )


@dataclass
class FolderState:
    """Sync cursor of one folder: the caller persists it."""

    name: str
    role: str
    uidvalidity: int | None = None
    last_uid: int = 0


@dataclass(frozen=True)
class HeaderInfo:
    """What the cheap header fetch tells about one message (no body)."""

    folder: str
    uid: int
    message_id: str  # normalised "<...>"; synthesised from a hash when missing
    subject: str
    date: dt.datetime | None  # aware, UTC
    from_addrs: tuple[str, ...]  # normalised lower-case addresses
    to_addrs: tuple[str, ...]
    cc_addrs: tuple[str, ...]
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    size: int = 0
    flags: tuple[str, ...] = ()
    gm_msgid: int | None = None
    gm_labels: tuple[str, ...] = ()
    auto_submitted: bool = False  # Auto-Submitted / Precedence bulk / List-Id
    internal_date: dt.datetime | None = None  # the server's INTERNALDATE (aware, UTC)
    synthetic_id: bool = False  # the message has no Message-ID: ``message_id`` is made up

    @property
    def all_addrs(self) -> tuple[str, ...]:
        return self.from_addrs + self.to_addrs + self.cc_addrs


@dataclass
class Attachment:
    filename: str
    content_type: str
    data: bytes = field(repr=False)
    content_id: str | None = None
    inline: bool = False


@dataclass(frozen=True)
class Limits:
    """What one message may cost (None: no limit). An attachment over ``max_attachment_bytes``
    is not kept; a message over ``max_message_bytes`` is read from its header and its text
    parts only (by part, never downloaded whole); a message of more than ``max_parts`` MIME
    parts is refused (skipped, for the caller to retry once the limit is raised)."""

    max_attachment_bytes: int | None = None
    max_message_bytes: int | None = None
    max_parts: int | None = None


OMITTED_ATTACHMENT_LIMIT = "attachment_limit"  # the part alone is over max_attachment_bytes
OMITTED_MESSAGE_LIMIT = "message_limit"  # the whole message is over max_message_bytes


@dataclass(frozen=True)
class Omitted:
    """A part that was not kept, for the note the caller adds to the message."""

    filename: str
    content_type: str
    size: int  # decoded bytes (estimated from the encoded size when it was never fetched)
    reason: str  # OMITTED_ATTACHMENT_LIMIT | OMITTED_MESSAGE_LIMIT


@dataclass
class ParsedMessage:
    """A full message as far as it could be read. ``defects`` lists what could not."""

    message_id: str
    subject: str
    date: dt.datetime | None
    from_display: str  # raw From, decoded, e.g. 'Ann <ann@x.org>'
    from_addr: str | None
    to_addrs: tuple[str, ...]
    cc_addrs: tuple[str, ...]
    in_reply_to: str | None
    references: tuple[str, ...]
    body_html: str | None  # the HTML parts
    body_text: str | None  # the text parts
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    size: int = 0
    omitted: list[Omitted] = field(default_factory=list)
    # Set when the message is refused as a whole (kind of SyncError, e.g. "too_many_parts",
    # and one sentence): the caller skips it instead of recording it.
    refused: tuple[str, str] | None = None
    # What a mail client shows, in order, as HTML: every inline text part (text as simple
    # HTML), the richest alternative, forwarded messages as quotes. What the chatter shows.
    body: str | None = None
    received_date: dt.datetime | None = None  # the newest Received header's date (aware)
    date_header: str = ""  # the Date header as written (kept when it is not used)


@dataclass
class SyncReport:
    folders: int = 0
    headers_seen: int = 0
    matched: int = 0
    recorded: int = 0  # messages handed to the recorder (the caller may say what it stored)
    entries: int = 0  # set by the caller: what the recorder created (chatter entries)
    bodies_bytes: int = 0
    headers_bytes: int = 0
    deferred: int = 0  # held back by the daily cap
    stopped_early: bool = False  # deadline reached
    errors: list = field(default_factory=list)  # SyncError of single messages
