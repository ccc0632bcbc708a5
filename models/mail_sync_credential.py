# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Encrypted secrets of a mailbox (password, OAuth tokens).

Nobody reaches this model through the ORM or RPC: its only access line grants nothing
(``0,0,0,0`` — it exists so that Odoo's "model has no access rules" check is satisfied).
Only the mailbox's own code reads or writes it, with ``sudo()``, through
``mail.sync.mailbox._set_secret`` / ``_get_secret``. The ``token`` column holds ciphertext
only (Fernet, see ``mailsync.secrets``): a database dump alone reveals no secret.
"""
import os

from odoo import api, fields, models, tools
from odoo.exceptions import UserError


KEY_FILE_NAME = "crm_mail_sync.key"
_BOX_CACHE = {}  # (config, env, key file, its inode/mtime/size) -> SecretBox


class MailSyncCredential(models.Model):
    _name = "mail.sync.credential"
    _description = "Mail Sync encrypted credential"
    _log_access = False

    mailbox_id = fields.Many2one(
        "mail.sync.mailbox", required=True, index=True, ondelete="cascade", readonly=True)
    kind = fields.Selection(
        [("password", "Password"), ("refresh_token", "Refresh token"),
         ("access_token", "Access token")],
        required=True, readonly=True)
    token = fields.Text("Ciphertext", copy=False, readonly=True)
    expires_at = fields.Datetime(copy=False, readonly=True)

    _sql_constraints = [
        ("mailbox_kind_unique", "unique(mailbox_id, kind)",
         "A mailbox holds at most one secret of each kind."),
    ]

    # ------------------------------------------------------------------ encryption
    @api.model
    def _secret_box(self):
        """The engine's SecretBox with this server's keys: the ``crm_mail_sync_keys`` option of
        Odoo's configuration file, else the ``CRM_MAIL_SYNC_KEYS`` environment variable, else a
        key file created on first use in Odoo's data directory. Never from the database.

        A missing or wrong key is a clear ``UserError`` naming the fix."""
        from ..mailsync import secrets

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
            box = secrets.SecretBox(secrets.load_keys(
                config_value=config_value, env_value=env_value, key_file_path=key_file))
        except secrets.SecretKeyError as exc:
            raise UserError(str(exc)) from None
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
        from ..mailsync import secrets

        try:
            return self._secret_box().decrypt(token)
        except secrets.SecretKeyError as exc:
            raise UserError(str(exc)) from None
