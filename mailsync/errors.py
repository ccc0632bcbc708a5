"""Error kinds of the engine, classification of low-level failures, fixes.

Every failure that leaves the engine is a :class:`SyncError` with a ``kind``
(one of :data:`KINDS`), the server's words with secrets removed (``detail``),
whether trying again later can help (``retryable``) and, where it matters,
the host and port. :func:`fix_for` tells the user how to fix each kind.

The engine speaks English. Its texts are marked with :func:`_lt` so that Odoo's exporter puts
them in the addon's ``i18n/crm_mail_sync.pot``; the Odoo layer shows them in the user's language
with :func:`translate` (``mail.sync.log._translated``).
"""

from __future__ import annotations

import base64
import binascii
import imaplib
import re
import smtplib
import socket
import ssl

from .text import clean_line


def _lt(text: str) -> str:
    """Mark a text of the catalogue for translation; returns it unchanged.

    No Odoo here: the name is the marker. Odoo's exporter extracts the string literals passed to
    functions named ``_`` and ``_lt`` from every Python file of the addon (``odoo.tools.translate``,
    ``TranslationModuleReader``), so these texts land in the .pot and the .po files; the Odoo
    layer translates them where they are shown (:func:`translate`)."""
    return text


AUTH_FAILED_TEXT = _lt("Authentication failed. Please try again.")

KINDS = (
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
    "protocol",
    "over_quota",
    "throttled",
    "too_many_connections",
    "folder_missing",
    "message_too_large",
    "parse",
    "config",
    "key",
    "rejected",
    "too_many_parts",
    "record",
    "crashed",
    "not_allowed",
    "unknown",
)

# Kinds of one message's failure: the message is skipped (and can be retried), the mailbox
# and the other messages go on.
MESSAGE_KINDS = frozenset({"parse", "message_too_large", "too_many_parts", "record", "crashed"})

RETRYABLE = frozenset(
    {
        "dns",
        "refused",
        "timeout",
        "dropped",
        "protocol",
        "over_quota",
        "throttled",
        "too_many_connections",
        "unknown",
    }
)

PROVIDERS = ("generic", "gmail", "outlook")

# One-line human message per kind; {where} is " (host:port)" or "". Translations keep the
# {placeholders}: the Odoo layer fills them in after translating (translate()).
_MESSAGES = {
    "auth": AUTH_FAILED_TEXT,
    "imap_disabled": _lt("IMAP access is disabled for this mailbox{where}."),
    "app_password": _lt("The server requires an app password for this account{where}."),
    "oauth_revoked": _lt("The connection to the mail account was revoked or has expired."),
    "certificate": _lt("The server's security certificate could not be verified{where}."),
    "tls": _lt("A secure (TLS) connection could not be established{where}."),
    "dns": _lt("The server name could not be found{where}."),
    "refused": _lt("The server refused the connection{where}."),
    "timeout": _lt("The server did not answer in time{where}."),
    "dropped": _lt("The connection to the server was lost{where}."),
    "protocol": _lt("The server sent an answer that could not be understood{where}."),
    "over_quota": _lt("The mailbox is over its quota or its daily limit{where}."),
    "throttled": _lt("The server asked to slow down and try again later{where}."),
    "too_many_connections": _lt("Too many simultaneous connections to this mailbox{where}."),
    "folder_missing": _lt("A synced folder no longer exists{where}."),
    "message_too_large": _lt("A message is too large to be synced{where}."),
    "rejected": _lt("The mail server did not accept this email or its recipients{where}."),
    "parse": _lt("A message could not be read."),
    "too_many_parts": _lt(
        "A message has more parts (attachments, inline parts) than the limit allows."
    ),
    "record": _lt("A message could not be recorded."),
    "not_allowed": _lt(
        "Mail Sync does not connect to this server or port: it is not a public mail server{where}."
    ),
    "crashed": _lt("The sync stopped twice while reading this message."),
    "config": _lt("The mailbox settings are incomplete or not allowed{where}."),
    "key": _lt(
        "The stored password or token cannot be decrypted with this server's Mail Sync "
        "encryption keys."
    ),
    "unknown": _lt("An unexpected error occurred{where}."),
}

# A missing folder that is named, and where a message-level error happened.
_FOLDER_MISSING_NAMED = _lt("The folder {folder} no longer exists{where}.")
_MESSAGE_PLACE = _lt("(folder {folder}, UID {uid})")

_GENERIC_FIXES = {
    "auth": _lt("Check the address (login) and password, then try again."),
    "imap_disabled": _lt(
        "Enable IMAP access in the mailbox's settings (or ask its administrator), then try again."
    ),
    "app_password": _lt(
        "Create an app password in the mail account's security settings and use "
        "it here instead of the normal password."
    ),
    "oauth_revoked": _lt("Connect the mailbox again to grant access."),
    "certificate": _lt(
        "Check the server name: it must match the server's certificate. If the "
        "server uses a self-signed certificate, install a valid one or ask the "
        "provider for the right server name."
    ),
    "tls": _lt(
        "Check the port and the security setting: SSL/TLS is usually port 993 for IMAP "
        "and 465 for SMTP; STARTTLS is usually port 143 for IMAP and 587 for SMTP."
    ),
    "dns": _lt("Check the server name for typos (for example imap.example.com)."),
    "refused": _lt("Check the server name and port, and that a firewall allows the connection."),
    "timeout": _lt(
        "Check the server name and port, and that a firewall does not block the "
        "connection. Sync will try again automatically."
    ),
    "dropped": _lt("Nothing to do if it happens once: sync will try again automatically."),
    "protocol": _lt(
        "Check that the server and port are an IMAP (or SMTP) server. Sync will try "
        "again automatically."
    ),
    "over_quota": _lt(
        "Free space in the mailbox or wait for the provider's daily limit to "
        "reset; sync continues automatically."
    ),
    "throttled": _lt("Nothing to do: sync will try again later."),
    "too_many_connections": _lt(
        "Close other mail programs connected to this mailbox, or wait; sync will try again later."
    ),
    "folder_missing": _lt(
        "The folder was renamed or deleted; the mailbox folders will be "
        "discovered again at the next sync."
    ),
    "message_too_large": _lt("Nothing to do: the message is skipped."),
    "rejected": _lt(
        "Read the server's answer: check the recipients' addresses and the email. A "
        "temporary refusal is retried automatically; otherwise correct the email "
        "and send it again."
    ),
    "parse": _lt(
        "Nothing else is affected: this message is skipped, the others are synced. An "
        "update of the addon may fix it; then use Retry skipped messages."
    ),
    "too_many_parts": _lt(
        "This message is skipped. To sync it, raise the limit of parts per "
        "email in Settings > CRM > Mail Sync, then use Retry skipped messages."
    ),
    "not_allowed": _lt(
        "Use your mail provider's public server name and its usual port (IMAP "
        "993 or 143, SMTP 465 or 587). A server on your company's own network "
        "must first be allowed by an administrator in Settings > CRM > Mail Sync "
        "> Allowed networks."
    ),
    "record": _lt(
        "Nothing else is affected: this message is skipped, the others are synced. An "
        "update of the addon may fix it; then use Retry skipped messages."
    ),
    "crashed": _lt(
        "This message is skipped so that the rest of the mailbox syncs. An update of "
        "the addon, or more memory or time for Odoo's scheduled actions, may fix it; "
        "then use Retry skipped messages."
    ),
    "config": _lt(
        "Complete the mailbox settings (server, port, security, login). Unencrypted "
        "connections are only allowed to the local machine."
    ),
    "key": _lt(
        "An administrator must set the key(s) that encrypted the stored secrets again "
        "(comma-separated, newest first) in the crm_mail_sync_keys option of Odoo's "
        "configuration file or the CRM_MAIL_SYNC_KEYS environment variable, or restore "
        "the crm_mail_sync.key file in Odoo's data directory, then restart Odoo. If the "
        "key is lost, enter the password again or connect the mailbox again."
    ),
    "unknown": _lt(
        "Try again later. If it persists, contact your administrator with the time of the error."
    ),
}

_PROVIDER_FIXES = {
    ("auth", "gmail"): _lt(
        "Check the address and password. Gmail: enable IMAP in Gmail "
        "settings (Forwarding and POP/IMAP), and if 2-Step Verification is "
        "on, create an app password and use it here — or use Connect with "
        "Google."
    ),
    ("auth", "outlook"): _lt(
        "Check the address and password. Outlook / Microsoft 365: IMAP "
        "must be enabled for the mailbox (Outlook settings > Mail > Sync "
        "email, or by your Microsoft 365 administrator); with two-step "
        "verification on, create an app password and use it here. "
        "Organisations that blocked basic authentication need OAuth."
    ),
    ("imap_disabled", "gmail"): _lt(
        "Gmail: open Settings > See all settings > Forwarding and "
        "POP/IMAP, choose Enable IMAP and save. Google Workspace: "
        "your administrator must allow IMAP access."
    ),
    ("imap_disabled", "outlook"): _lt(
        "Outlook / Microsoft 365: ask your administrator to "
        "enable IMAP for the mailbox (Exchange admin center > "
        "Mailboxes > Email apps)."
    ),
    ("app_password", "gmail"): _lt(
        "Gmail: 2-Step Verification is on. Create an app password at "
        "https://myaccount.google.com/apppasswords and use it here — "
        "or use Connect with Google."
    ),
    ("app_password", "outlook"): _lt(
        "Microsoft account: create an app password at "
        "https://account.live.com/proofs/AppPassword and use it "
        "here."
    ),
    ("oauth_revoked", "gmail"): _lt(
        "Use Connect with Google again to grant access (the access "
        "was revoked, the password changed or the grant expired)."
    ),
    ("over_quota", "gmail"): _lt(
        "Gmail limits how much mail can be downloaded or sent per day; "
        "sync resumes automatically when the limit resets."
    ),
    ("too_many_connections", "gmail"): _lt(
        "Gmail allows at most 15 IMAP connections per "
        "account: close other mail programs using this "
        "account, or wait."
    ),
}


def fix_for(kind: str, provider: str = "generic") -> str:
    """How to fix an error of ``kind`` for ``provider`` (generic | gmail | outlook)."""
    return (
        _PROVIDER_FIXES.get((kind, provider))
        or _GENERIC_FIXES.get(kind)
        or _GENERIC_FIXES["unknown"]
    )


class SyncError(Exception):
    """A classified failure. ``str(e)`` is a one-line human message."""

    def __init__(
        self,
        kind: str,
        detail: str = "",
        *,
        host: str | None = None,
        port: int | None = None,
        retryable: bool | None = None,
        provider: str = "generic",
        uid: int | None = None,
        folder: str | None = None,
        header=None,
    ):
        if kind not in KINDS:
            kind = "unknown"
        self.kind = kind
        self.detail = _one_line(detail)
        self.host = host
        self.port = port
        self.retryable = kind in RETRYABLE if retryable is None else retryable
        self.provider = provider
        self.uid = uid
        self.folder = folder
        self.header = header  # HeaderInfo of the message a message-level error is about
        super().__init__(self.message)

    @property
    def where(self) -> str:
        if self.host and self.port:
            return f" ({self.host}:{self.port})"
        if self.host:
            return f" ({self.host})"
        return ""

    @property
    def summary(self) -> str:
        """What went wrong in one sentence, without naming the host, folder or message."""
        return _MESSAGES[self.kind].format(where="")

    @property
    def message(self) -> str:
        msg = _MESSAGES[self.kind].format(where=self.where)
        if self.kind == "folder_missing" and self.folder:
            msg = _FOLDER_MISSING_NAMED.format(folder=repr(self.folder), where=self.where)
        if self.uid is not None and (
            self.kind in MESSAGE_KINDS or self.kind in ("protocol", "unknown")
        ):
            msg += " " + _MESSAGE_PLACE.format(folder=repr(self.folder), uid=self.uid)
        return msg

    @property
    def fix(self) -> str:
        return fix_for(self.kind, self.provider)

    def __str__(self):
        return self.message

    def __repr__(self):
        return f"SyncError({self.kind!r}, {self.detail!r}, host={self.host!r}, port={self.port!r})"

    def __reduce__(self):
        return (
            _rebuild,
            (
                self.kind,
                self.detail,
                self.host,
                self.port,
                self.retryable,
                self.provider,
                self.uid,
                self.folder,
            ),
        )


def _rebuild(kind, detail, host, port, retryable, provider, uid, folder):
    return SyncError(
        kind,
        detail,
        host=host,
        port=port,
        retryable=retryable,
        provider=provider,
        uid=uid,
        folder=folder,
    )


def _one_line(text) -> str:
    return clean_line(text, 500)


# --- translation ----------------------------------------------------------------------------

# Texts of the catalogue shown as they are, and templates whose {placeholders} were filled in.
_PLAIN_TEXTS = frozenset(
    [text for text in _MESSAGES.values() if "{" not in text]
    + list(_GENERIC_FIXES.values())
    + list(_PROVIDER_FIXES.values())
)
_PLACEHOLDER_RX = {
    "where": r"(?P<where>(?: \([^()]*\))?)",  # SyncError.where: " (host:port)", " (host)" or ""
    "folder": r"(?P<folder>.+)",
    "uid": r"(?P<uid>\d+)",
}


def _template_rx(template: str) -> re.Pattern:
    rx = re.escape(template)
    for name, group in _PLACEHOLDER_RX.items():
        rx = rx.replace(re.escape("{%s}" % name), group)
    return re.compile(rx, re.S)


_TEMPLATES = [
    (template, _template_rx(template))
    for template in [*_MESSAGES.values(), _FOLDER_MISSING_NAMED]
    if "{" in template
]
_PLACE_RX = re.compile(r"(?P<head>.+) " + _template_rx(_MESSAGE_PLACE).pattern, re.S)


# Longest first: "<catalogue message> <detail>" lines are translated by their longest prefix.
_PREFIXES = sorted(_PLAIN_TEXTS, key=len, reverse=True)


def _fill(gettext, template: str, values: dict) -> str:
    try:
        return gettext(template).format(**values)
    except Exception:  # noqa: BLE001 - a translation with a wrong placeholder: the English
        return template.format(**values)


def _translate_line(line: str, gettext) -> str:
    head, place = line, ""
    match = _PLACE_RX.fullmatch(line)
    if match and _translate_head(match["head"], gettext) is not None:
        head = match["head"]
        place = " " + _fill(
            gettext, _MESSAGE_PLACE, {"folder": match["folder"], "uid": match["uid"]}
        )
    text = _translate_head(head, gettext)
    if text is None and not place:
        # "<catalogue message> <the server's own words>" (a skipped message's reason)
        for known in _PREFIXES:
            if line.startswith(known + " "):
                return gettext(known) + line[len(known) :]
    return line if text is None else text + place


def _translate_head(text: str, gettext) -> str | None:
    if text in _PLAIN_TEXTS:
        return gettext(text)
    for template, rx in _TEMPLATES:
        match = rx.fullmatch(text)
        if match:
            return _fill(gettext, template, match.groupdict())
    return None


def translate(text, gettext):
    """``text`` — messages and fixes of this catalogue as the engine wrote them, in English,
    one per line (``str(error)``, ``error.summary``, ``error.fix``, an error-log line) — in the
    language of ``gettext``: a function from an English text of the catalogue to its translation
    (the Odoo layer passes ``env._``). Host, port, folder and UID are kept; a line that is not
    from the catalogue (a server's words) is kept as it is."""
    if not text:
        return text
    return "\n".join(_translate_line(line, gettext) for line in str(text).split("\n"))


# --- redaction -------------------------------------------------------------------------------

_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")


def _b64_variants(secret: str) -> set[str]:
    out = set()
    raw = secret.encode("utf-8")
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        s = enc(raw).decode("ascii")
        out.add(s)
        out.add(s.rstrip("="))
    return {v for v in out if len(v) >= 4}


def redact(text, secrets) -> str:
    """Remove every secret from ``text``: the secret itself, its base64 forms, and any base64
    blob whose decoded content contains a secret (e.g. an XOAUTH2 or PLAIN SASL string)."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text)
    secrets = [s for s in (secrets or ()) if s]
    secrets = [s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s) for s in secrets]
    if not secrets:
        return text
    needles = set()
    for s in secrets:
        needles.add(s)
        needles |= _b64_variants(s)
    for needle in sorted(needles, key=len, reverse=True):
        text = text.replace(needle, "[redacted]")

    def _blob(m):
        blob = m.group(0)
        padded = blob + "=" * (-len(blob) % 4)
        for dec in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded = dec(padded).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                continue
            if any(s in decoded for s in secrets):
                return "[redacted]"
        return blob

    return _B64_RUN.sub(_blob, text)


# --- classification --------------------------------------------------------------------------

# (kind, regex on the server's words); first match wins. Response codes in brackets (RFC 5530)
# come first: they are the most precise.
_TEXT_RULES = [
    (
        "app_password",
        r"application-specific password required|please log in via your web "
        r"browser|web login required|5\.7\.9 application-specific",
    ),
    (
        "imap_disabled",
        r"not enabled for imap|imap access is disabled|imap is disabled|"
        r"enable your account for imap|user is authenticated but not connected",
    ),
    ("oauth_revoked", r"invalid_grant|token has been expired or revoked|token.*revoked"),
    ("too_many_connections", r"\[limit\]"),
    ("over_quota", r"\[overquota\]"),
    # Dovecot/Gmail say "[UNAVAILABLE] Too many simultaneous connections": the words are more
    # precise than the generic code.
    ("too_many_connections", r"too many simultaneous connections"),
    ("throttled", r"\[throttled\]|\[unavailable\]|\[inuse\]"),
    ("folder_missing", r"\[nonexistent\]"),
    ("message_too_large", r"\[toobig\]"),
    ("auth", r"\[authenticationfailed\]|\[authorizationfailed\]|\[expired\]"),
    (
        "too_many_connections",
        r"too many simultaneous connections|too many connections|"
        r"maximum number of connections|mail_max_userip_connections",
    ),
    (
        "over_quota",
        r"over ?quota|quota exceeded|(?<![\d.])5\.4\.5(?![\d.])|"
        r"daily user sending (quota|limit)|"
        r"exceeded.*(daily|download).*limit|"
        r"account exceeded command or bandwidth limits",
    ),  # Gmail's daily limits
    (
        "throttled",
        r"throttl|try again later|temporar(il)?y unavailable|server busy|"
        r"rate limit|bandwidth limit",
    ),
    (
        "folder_missing",
        r"mailbox doesn'?t exist|no such (mailbox|folder)|unknown mailbox|"
        r"folder not found",
    ),
    ("message_too_large", r"message too large|message size exceeds|(?<![\d.])5\.3\.4(?![\d.])"),
    (
        "auth",
        r"authentication failed|invalid credentials|login failed|authenticate failed|"
        r"logon failure|username and password not accepted|(?<![\d.])5\.7\.8(?![\d.])",
    ),
]
_TEXT_RULES = [(k, re.compile(r, re.I)) for k, r in _TEXT_RULES]

_SENDING_LIMIT = re.compile(
    r"(?<![\d.])5\.4\.5(?![\d.])|daily user sending|"
    r"sending (quota|limit)",
    re.I,
)

_DROPPED_TYPES = (
    EOFError,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    smtplib.SMTPServerDisconnected,
)


def _text_of(exc) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        return "; ".join(
            f"{addr}: {code} {msg.decode('utf-8', 'replace') if isinstance(msg, bytes) else msg}"
            for addr, (code, msg) in exc.recipients.items()
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        msg = exc.smtp_error
        if isinstance(msg, bytes):
            msg = msg.decode("utf-8", "replace")
        return f"{exc.smtp_code} {msg}"
    parts = []
    for a in getattr(exc, "args", ()) or ():
        if isinstance(a, bytes):
            a = a.decode("utf-8", "replace")
        parts.append(str(a))
    text = " ".join(parts) or str(exc)
    return text or type(exc).__name__


def classify(exc, *, host=None, port=None, provider="generic", secrets=()) -> SyncError:
    """Map any exception (socket, ssl, imaplib/imapclient, smtplib, OAuth …) to a SyncError.

    Idempotent: a SyncError is returned as is (host/port/provider filled in when missing).
    ``secrets`` are removed from the recorded detail.
    """
    if isinstance(exc, SyncError):
        if host and not exc.host:
            exc.host, exc.port = host, port
        if provider != "generic" and exc.provider == "generic":
            exc.provider = provider
        return exc
    detail = redact(f"{type(exc).__name__}: {_text_of(exc)}", secrets)
    kind = _kind_of(exc, _text_of(exc))
    return SyncError(kind, detail, host=host, port=port, provider=provider)


def _kind_of(exc, text: str) -> str:
    # Network layer first: the type tells more than the words.
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "certificate"
    if isinstance(exc, ssl.CertificateError):
        return "certificate"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, smtplib.SMTPConnectError):
        return _smtp_code_kind(exc) or "refused"
    if isinstance(exc, _DROPPED_TYPES):
        return "timeout" if re.search(r"timed? ?out", text, re.I) else "dropped"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # Every recipient refused: this mail's addresses, not the mailbox (unless the server
        # says the sender's own sending limit is reached).
        return "over_quota" if _SENDING_LIMIT.search(text) else "rejected"
    name = type(exc).__name__
    # OAuth libraries (not imported here): google.auth RefreshError, oauthlib InvalidGrantError.
    if name in ("RefreshError", "InvalidGrantError") and re.search(
        r"invalid_grant|revoked|expired", text, re.I
    ):
        return "oauth_revoked"
    for kind, rx in _TEXT_RULES:
        if rx.search(text):
            return kind
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return "auth"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return "config"
    if isinstance(exc, smtplib.SMTPResponseException):
        return _smtp_code_kind(exc) or "protocol"
    if isinstance(exc, smtplib.SMTPException):
        if "STARTTLS" in text.upper():
            return "tls"
        if "AUTH" in text.upper():
            return "config"
        return "protocol"
    if name == "LoginError":
        return "auth"
    if isinstance(exc, OSError):
        import errno

        if exc.errno in (
            errno.ENETUNREACH,
            errno.EHOSTUNREACH,
            errno.EHOSTDOWN,
            errno.EADDRNOTAVAIL,
        ):
            return "refused"
        if exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
            return "dropped"
        if exc.errno == errno.ETIMEDOUT:
            return "timeout"
        return "dropped"
    if isinstance(exc, imaplib.IMAP4.abort):
        if re.search(r"timed? ?out", text, re.I):
            return "timeout"
        if re.search(r"TLS", text):
            return "tls"
        if re.search(r"unexpected (tagged )?response|got more than|illegal|invalid", text, re.I):
            return "protocol"
        # imaplib: a line ending in a bare LF is the server's fault (EOF mid-line is a drop)
        if re.search(r"unterminated line: .*\\n['\"]$", text):
            return "protocol"
        return "dropped"
    if name == "ProtocolError" or isinstance(
        exc, (imaplib.IMAP4.error, ValueError, UnicodeError, IndexError, KeyError)
    ):
        return "protocol"
    return "unknown"


def _smtp_code_kind(exc) -> str | None:
    code = getattr(exc, "smtp_code", 0) or 0
    if code == 421:
        return "throttled"
    if code in (535, 534, 530):
        return "auth"
    if code == 552:
        return "message_too_large"
    if isinstance(exc, (smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) and code in (
        450,
        451,
        452,
        550,
        551,
        553,
        554,
    ):
        # MAIL FROM or DATA refused: a transaction the server would not take (a 554 when
        # connecting is a refused connection: SMTPConnectError, see _kind_of).
        return "rejected"
    return None
