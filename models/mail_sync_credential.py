# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Encrypted secrets of a mailbox (password, OAuth tokens, the OAuth sign-in in progress).

Nobody reaches this model through the ORM or RPC: its only access line grants nothing
(``0,0,0,0`` — it exists so that Odoo's "model has no access rules" check is satisfied).
Only the mailbox's own code reads or writes it, with ``sudo()``, through
``mail.sync.mailbox._set_secret`` / ``_get_secret``. The ``token`` column holds ciphertext
only (Fernet, see ``mailsync.secrets``): a database dump alone reveals no secret.

Every secret the addon stores — mailbox passwords, OAuth refresh and access tokens, the OAuth
sign-in in progress (nonce + PKCE verifier) in ``mail.sync.credential``, the OAuth apps' client
secrets in ``ir.config_parameter`` — is Fernet ciphertext under the keys of ``mailsync.secrets``
(the ``crm_mail_sync_keys`` option, else ``CRM_MAIL_SYNC_KEYS``, else the key file). Nothing
falls back to clear text.

A key that cannot decrypt a secret raises :class:`MailSyncKeyError`: a ``UserError`` for a
button (its text names the fix) and, in the sync, a ``SyncError`` of kind ``key`` that the
mailbox records as any other failure (Error status, an error-log entry with the fix) — no
traceback, no crash loop.

Rotation: put a new key in front of the old one (``new,old``), restart, then run
``env["mail.sync.credential"]._rotate_keys()`` (the "Re-encrypt Mail Sync secrets" action for
administrators, or ``odoo-bin shell``): every secret is re-encrypted with the new key in one
transaction; afterwards the old key can be dropped.
"""

import logging
import os

from odoo import _, api, fields, models, tools
from odoo.exceptions import AccessError, UserError

from ..mailsync import errors, secrets
from .mail_sync_oauth_mixin import STATE_KIND as OAUTH_STATE_KIND, param_key

_logger = logging.getLogger(__name__)

OAUTH_PROVIDERS = ("google", "microsoft")

KEY_FILE_NAME = "crm_mail_sync.key"
_BOX_CACHE = {}  # (config, env, key file, its inode/mtime/size) -> SecretBox


class MailSyncKeyError(errors.SyncError, UserError):
    """The configured keys cannot decrypt a stored secret (or no usable key is configured).

    Both a ``SyncError`` (kind ``key``: the sync logs it with its fix and goes on) and a
    ``UserError`` (a button shows it). Its text never holds the secret or the keys."""

    def __init__(self, detail=""):
        super().__init__("key", detail, retryable=False)
        self.args = (str(self),)  # what Odoo shows the user: the message and its fix

    def __str__(self):
        return f"{self.message}\n{self.fix}"

    def __reduce__(self):
        return (MailSyncKeyError, (self.detail,))


class MailSyncCredential(models.Model):
    _name = "mail.sync.credential"
    _description = "Mail Sync encrypted credential"
    _log_access = False

    mailbox_id = fields.Many2one(
        "mail.sync.mailbox", required=True, index=True, ondelete="cascade", readonly=True
    )
    kind = fields.Selection(
        [
            ("password", "Password"),
            ("refresh_token", "Refresh token"),
            ("access_token", "Access token"),
            (OAUTH_STATE_KIND, "OAuth sign-in in progress"),
        ],
        required=True,
        readonly=True,
    )
    token = fields.Text("Ciphertext", copy=False, readonly=True)
    expires_at = fields.Datetime(copy=False, readonly=True)

    _sql_constraints = [
        (
            "mailbox_kind_unique",
            "unique(mailbox_id, kind)",
            "A mailbox holds at most one secret of each kind.",
        ),
    ]

    # ------------------------------------------------------------------ encryption
    @api.model
    def _secret_box(self):
        """The engine's SecretBox with this server's keys: the ``crm_mail_sync_keys`` option of
        Odoo's configuration file, else the ``CRM_MAIL_SYNC_KEYS`` environment variable, else a
        key file created on first use in Odoo's data directory. Never from the database.

        A missing or wrong key is a clear ``MailSyncKeyError`` naming the fix."""
        config_value = tools.config.get(secrets.CONFIG_PARAM)
        env_value = os.environ.get(secrets.ENV_VAR)
        key_file = os.path.join(tools.config["data_dir"], KEY_FILE_NAME)
        stamp = None
        if not (config_value or env_value):
            try:
                st = os.stat(key_file)
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            except OSError:
                pass  # created on first use below; not cached until then
        cache_key = (config_value, env_value, key_file, stamp)
        box = _BOX_CACHE.get(cache_key)
        if box is not None:
            return box
        try:
            box = secrets.SecretBox(
                secrets.load_keys(
                    config_value=config_value, env_value=env_value, key_file_path=key_file
                )
            )
        except secrets.SecretKeyError as exc:
            raise MailSyncKeyError(str(exc)) from None
        if config_value or env_value or stamp:
            # Keys are read once per source: each poll decrypts a password, and reading the
            # key file every time cost more than the rest of the decryption.
            _BOX_CACHE.clear()
            _BOX_CACHE[cache_key] = box
        return box

    @api.model
    def _encrypt(self, value):
        return self._secret_box().encrypt(value)

    @api.model
    def _decrypt(self, token):
        try:
            return self._secret_box().decrypt(token)
        except secrets.SecretKeyError as exc:
            raise MailSyncKeyError(str(exc)) from None

    # ------------------------------------------------------------------ rotation
    @api.model
    def _rotate_keys(self):
        """Re-encrypt every stored secret with the first (newest) configured key.

        All or nothing: a secret that none of the configured keys decrypts aborts the whole
        rotation with a ``MailSyncKeyError`` naming the fix (nothing is written). Administrators
        only. Returns the number of secrets re-encrypted."""
        if not (self.env.is_superuser() or self.env.user.has_group("base.group_system")):
            raise AccessError(_("Only administrators can re-encrypt the Mail Sync secrets."))
        box = self._secret_box()
        Credential = self.sudo().with_context(active_test=False)
        count = 0
        for cred in Credential.search([("token", "!=", False)], order="id"):
            try:
                token = box.rotate(cred.token)
            except secrets.SecretKeyError:
                raise MailSyncKeyError(
                    _(
                        "The secret of kind %(kind)s of mailbox %(mailbox)s cannot be decrypted "
                        "with any configured key: nothing was re-encrypted.",
                        kind=cred.kind,
                        mailbox=cred.mailbox_id.id,
                    )
                ) from None
            cred.write({"token": token})
            count += 1
        ICP = self.env["ir.config_parameter"].sudo()
        for provider in OAUTH_PROVIDERS:
            key = param_key(provider, "client_secret")
            cipher = ICP.get_param(key)
            if not cipher:
                continue
            try:
                ICP.set_param(key, box.rotate(cipher))
            except secrets.SecretKeyError:
                raise MailSyncKeyError(
                    _(
                        "The %s client secret cannot be decrypted with any configured key: nothing "
                        "was re-encrypted.",
                        provider,
                    )
                ) from None
            count += 1
        _logger.info("Mail Sync: %s secret(s) re-encrypted with the newest key", count)
        return count

    @api.model
    def _action_rotate_keys(self):
        """The administrators' action: rotate, then say how many secrets were re-encrypted."""
        count = self._rotate_keys()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "title": _("Mail Sync secrets re-encrypted"),
                "message": _(
                    "%s secret(s) are now encrypted with the newest key. The older "
                    "keys can be removed from the configuration.",
                    count,
                ),
                "sticky": False,
            },
        }
