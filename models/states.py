# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The mailbox statuses each rule counts, in one place (``mail.sync.mailbox.state``).

Not connected (``draft``) → Test connection → Enabled, or Pending when the company's mailbox
limit is reached; a failed sync → Error; 48 hours of errors → Connection."""

# The cron syncs these (Pending waits for a seat; Connection for a connection test).
SYNCING_STATES = ("enabled", "error")
# A connection test succeeded (the login proves the address): its domain is the company's own.
CONNECTED_STATES = ("enabled", "error")
# Mailboxes the company pays for: not Pending, not Connection (and active).
BILLABLE_STATES = ("enabled", "error")
# Mailboxes that hold a seat of the company limit. Connection keeps its seat until the mailbox
# is disconnected; Pending waits for one; Not connected holds none.
SEAT_STATES = ("enabled", "error", "connection")
# The owner has set Mail Sync up: the top-bar link shows.
CONFIGURED_STATES = ("enabled", "error", "pending")

# Who sees the mail a mailbox records (res.users.mail_sync_sharing, the company's default).
SHARING = [
    ("everyone", "Everyone who can see the record"),
    ("metadata", "Subject and participants only"),
    ("private", "Private"),
]
