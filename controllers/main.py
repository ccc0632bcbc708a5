# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""HTTP controllers of crm_mail_sync: the OAuth callback of "Connect with Google / Microsoft"."""

import logging

from odoo import _, http
from odoo.http import request

from ..mailsync import errors, oauth
from ..models.mail_sync_oauth_mixin import CALLBACK_PATH, OAuthRefused

_logger = logging.getLogger(__name__)


class MailSyncOAuthController(http.Controller):
    @http.route(CALLBACK_PATH, type="http", auth="user", methods=["GET"])
    def mail_sync_oauth_callback(self, state=None, code=None, **kwargs):
        """The provider sends the browser back here with ``code`` and our ``state``.

        Accepted only for the signed-in user who clicked the button, with a signed, unexpired,
        unused state bound to their mailbox; anything else gets the refusal page and stores
        nothing. Then the code is exchanged for tokens, the connection tested and sync enabled,
        and the browser goes back to the mailbox form.
        """
        Mailbox = request.env["mail.sync.mailbox"]
        try:
            mailbox, provider, verifier = Mailbox._oauth_consume_state(state)
        except OAuthRefused as exc:
            return self._refusal(str(exc))
        label = oauth.get_provider(provider).label
        answer_error = oauth.parse_callback_error(kwargs)
        if answer_error is not None or not code:
            reason = answer_error.detail if answer_error else _("The answer had no code.")
            return self._refusal(
                _("%(provider)s did not grant access: %(reason)s", provider=label, reason=reason),
                mailbox,
            )
        try:
            mailbox._oauth_finish(provider, code, verifier)
        except errors.SyncError as exc:
            _logger.info(
                "Mail Sync: OAuth code exchange for mailbox %s failed: %s (%s)",
                mailbox.id,
                exc.kind,
                exc.detail,
            )
            return self._refusal(
                _(
                    "%(provider)s sign-in could not be completed: %(error)s",
                    provider=label,
                    error=str(exc),
                ),
                mailbox,
            )
        return request.redirect(f"/odoo/mail.sync.mailbox/{mailbox.id}")

    @staticmethod
    def _refusal(reason, mailbox=None):
        return request.render(
            "crm_mail_sync.oauth_refused",
            {
                "reason": reason,
                "back_url": f"/odoo/mail.sync.mailbox/{mailbox.id}" if mailbox else "/odoo",
            },
            status=403,
        )
