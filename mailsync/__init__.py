"""Odoo-free mail sync engine of crm_mail_sync.

Nothing in this package imports ``odoo``: it speaks IMAP/SMTP, parses MIME,
normalises addresses, keeps cursors and classifies errors, taking and
returning plain values (see :mod:`.types`). The Odoo models translate its
results into records. It is importable both as
``odoo.addons.crm_mail_sync.mailsync`` and, for its own tests, as the
top-level package ``mailsync``; so it only ever uses relative imports.
"""
