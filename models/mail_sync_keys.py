# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The encryption keys of the stored secrets: a clear error when they are wrong, and rotation.

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

from odoo import _, api, models
from odoo.exceptions import AccessError, UserError

from ..mailsync import errors, secrets
from .mail_sync_oauth_mixin import param_key

_logger = logging.getLogger(__name__)

OAUTH_PROVIDERS = ("google", "microsoft")


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
    _inherit = "mail.sync.credential"

    @api.model
    def _secret_box(self):
        try:
            return super()._secret_box()
        except UserError as exc:
            raise MailSyncKeyError(str(exc)) from None

    @api.model
    def _decrypt(self, token):
        box = self._secret_box()
        try:
            return box.decrypt(token)
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
                raise MailSyncKeyError(_(
                    "The secret of kind %(kind)s of mailbox %(mailbox)s cannot be decrypted "
                    "with any configured key: nothing was re-encrypted.",
                    kind=cred.kind, mailbox=cred.mailbox_id.id)) from None
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
                raise MailSyncKeyError(_(
                    "The %s client secret cannot be decrypted with any configured key: nothing "
                    "was re-encrypted.", provider)) from None
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
                "message": _("%s secret(s) are now encrypted with the newest key. The older "
                             "keys can be removed from the configuration.", count),
                "sticky": False,
            },
        }
