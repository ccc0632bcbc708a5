# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The values one sync of one mailbox carries from stage to stage, passed as arguments (never
through the context): ``SyncFacts`` (what the run reads besides the mailbox row, in one query
for a whole batch of mailboxes), ``SyncPolicy`` (what the matcher applies) and ``SyncRun``
(facts, policy, commit mode and what the run met). See ARCHITECTURE.md."""

import datetime


def naive_utc(value):
    """An aware datetime as Odoo's naive UTC (None stays None)."""
    if not value:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


class Counts(tuple):
    """What a recording made: ``emails`` (Message-IDs recorded, or recorded on more records)
    and ``entries`` (chatter messages created)."""

    __slots__ = ()

    def __new__(cls, emails, entries):
        return super().__new__(cls, (emails, entries))

    emails = property(lambda self: self[0])
    entries = property(lambda self: self[1])

    def __add__(self, other):
        return Counts(self[0] + other[0], self[1] + other[1])


class SyncFacts:
    """What one sync of one mailbox needs besides the mailbox row (plain values, no records)."""

    __slots__ = (
        "mailbox_id",
        "write_date",
        "owner_email",
        "tz",
        "daily_cap",
        "password_token",
        "folders",
        "limits",
        "inflight",
        "suspects",
    )

    def __init__(
        self,
        mailbox_id,
        write_date,
        owner_email,
        tz,
        daily_cap,
        password_token,
        folders,
        limits=None,
        inflight=None,
        suspects=None,
    ):
        self.mailbox_id = mailbox_id
        self.write_date = write_date
        self.owner_email = owner_email
        self.tz = tz
        self.daily_cap = daily_cap or 0
        self.password_token = password_token
        # [(id, name, role, uidvalidity, last_uid)] by id
        self.folders = folders
        self.limits = limits  # mailsync.types.Limits of the company
        self.inflight = inflight  # crash safety: mail.sync.mailbox.sync_inflight
        self.suspects = suspects  # and sync_suspects

    def __repr__(self):  # never the token
        return f"SyncFacts(mailbox={self.mailbox_id}, folders={len(self.folders)})"


class SyncPolicy:
    """What one sync run (or dry run, or late link) of one mailbox applies in the matcher;
    ``rules()`` queries on first use only (an idle poll costs no query).

    ``index``: unmatched headers are kept (``pending``) for the late-linking header index;
    ``create_leads``: the mailbox's opt-in applies (not in a dry run)."""

    def __init__(self, mailbox, *, index=True, create_leads=None):
        self.mailbox = mailbox
        self.index = index
        self.create_leads = mailbox.mail_sync_create_leads if create_leads is None else create_leads
        self._policy = None
        self.pending = {}  # folder name -> [HeaderInfo] matching nothing (header index)
        self.known = set()  # Message-IDs already synced by the mailbox (never indexed)
        self.errors = []  # message-level SyncErrors of the matcher (a lead it could not create)
        self.quota = None  # messages this run may still record (the daily cap), None: no cap

    def __repr__(self):
        return f"SyncPolicy(mailbox={self.mailbox.id})"

    def rules(self):
        """The ``mailsync.privacy.Policy`` of the mailbox (never-log list, auto-reply filter)."""
        if self._policy is None:
            self._policy = self.mailbox.env["mail.sync.exclusion"].sudo()._policy_for(self.mailbox)
        return self._policy


class SyncRun:
    """One sync of one mailbox (or a late link, a retry): its facts, policy and commit mode,
    and what it met on the way — the cursor rows, the owner's addresses, the secrets to redact,
    the message errors of the group being read, whether a batch is marked in flight."""

    def __init__(self, mailbox, *, facts=None, policy=None, auto_commit=False):
        self.facts = facts
        self.policy = policy
        self.auto_commit = auto_commit
        self.folders = {}  # folder name -> mail.sync.folder
        self.stored = {}  # folder name -> (uidvalidity, last_uid) as in the database
        self.own = mailbox._own_addresses(facts)
        self.secrets = []
        self.pending_errors = []  # message-level errors of the group being recorded
        self.inflight = False
        self.suspects = {}  # crash safety: what _crash_recovery kept, pruned at the end
        self.skipped = 0
        self.failed = {}  # folder name -> UIDs skipped by this run
        self.recorded = Counts(0, 0)  # emails and chatter entries this run recorded

    def __repr__(self):  # never the secrets
        return f"SyncRun(folders={len(self.folders)}, skipped={self.skipped})"
