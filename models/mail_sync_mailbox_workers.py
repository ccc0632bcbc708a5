# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Parallel sync on several cron workers, on one or several servers.

Odoo runs one scheduled action in one cron worker at a time (it locks the ``ir_cron`` row with
``FOR NO KEY UPDATE SKIP LOCKED``), so N workers syncing at once need N scheduled actions. The
parameter ``crm_mail_sync.cron_workers`` (default 1) says how many: the shipped action
(``ir_cron_mail_sync``) plus copies made (or archived) here at the start of each run. Every copy
runs the same ``_cron_sync``: the workers share the mailboxes through ``_claim`` (row lock
``SKIP LOCKED`` + a session-level advisory lock per mailbox), so a mailbox is synced by one worker
at a time and a killed worker leaves no lock behind.
"""
import logging
import threading
import time

from odoo import api, fields, models
from odoo.tools import config

_logger = logging.getLogger(__name__)

CRON_XMLID = "crm_mail_sync.ir_cron_mail_sync"
MAX_CRON_WORKERS = 64
# Odoo runs a job that reports remaining work up to this many times in a row (ir_cron.py).
MAX_RUNS_PER_ROUND = 10


class MailSyncMailbox(models.Model):
    _inherit = "mail.sync.mailbox"

    @api.model
    def _cron_workers(self):
        """The active scheduled actions that sync mailboxes, made to number
        ``crm_mail_sync.cron_workers``: copies of the shipped one are created or archived."""
        main = self.env.ref(CRON_XMLID, raise_if_not_found=False)
        if not main:
            return self.env["ir.cron"]
        main = main.sudo()
        wanted = max(1, min(self._get_param("cron_workers", 1), MAX_CRON_WORKERS))
        Cron = self.env["ir.cron"].sudo().with_context(active_test=False)
        copies = Cron.search([("model_id", "=", main.model_id.id), ("code", "=", main.code),
                              ("id", "!=", main.id)], order="id")
        active = copies.filtered("active")
        if len(active) + 1 < wanted:
            missing = wanted - 1 - len(active)
            revived = (copies - active)[:missing]
            revived.write({"active": True, "nextcall": main.nextcall})
            for index in range(missing - len(revived)):
                main.copy({
                    "name": "%s (worker %s)" % (main.name, len(copies) + index + 2),
                    "nextcall": main.nextcall,
                    "active": True,
                })
            _logger.info("Mail Sync: %s scheduled actions sync in parallel", wanted)
        elif len(active) + 1 > wanted:
            extra = active[wanted - 1:]
            try:
                with self.env.cr.savepoint():
                    extra._try_lock()  # one running in another worker: archive it next time
                    extra.write({"active": False})
            except Exception:  # noqa: BLE001 - lock not available
                _logger.info("Mail Sync: a scheduled action to archive is running; later")
        return Cron.search([("model_id", "=", main.model_id.id), ("code", "=", main.code),
                            ("active", "=", True)])

    @api.model
    def _cron_budget(self, time_budget=None):
        """The run's time budget, shortened so that Odoo's real-time limit of cron workers
        (``--limit-time-real-cron``, else ``--limit-time-real``: 120 s by default) never
        interrupts a run: the limit covers the whole round of a worker, in which Odoo repeats a
        job that reports remaining work up to 10 times. Threaded servers tell when the round
        started; prefork workers do not, so each run gets a tenth of the limit there."""
        budget = float(time_budget or self._get_param("cron_time_budget", 240))
        cron_limit = config.get("limit_time_real_cron") or 0
        if cron_limit > 0:
            limit = cron_limit
        elif cron_limit < 0 or not config.get("workers"):
            limit = config.get("limit_time_real") or 0  # what odoo/service/server.py applies
        else:
            limit = 0  # prefork with --limit-time-real-cron=0: no limit
        if limit <= 0:
            return budget
        started = getattr(threading.current_thread(), "start_time", None)
        if started:
            return min(budget, started + 0.8 * limit - time.time())
        return min(budget, 0.8 * limit / MAX_RUNS_PER_ROUND)

    @api.model
    def _cron_sync(self, batch_size=None, time_budget=None):
        """Keep the number of sync actions; run within the budget that Odoo's limits leave; when
        more mailboxes are due than this run takes, wake the other sync actions so that idle
        workers join in at once."""
        workers = self._cron_workers()
        if not getattr(threading.current_thread(), "testing", False):
            time_budget = self._cron_budget(time_budget)
            if time_budget < 1:
                # This worker's round is nearly over: the next round continues.
                current = workers.filtered(lambda c: c.id == self.env.context.get("cron_id"))
                if current:
                    current._trigger()
                return 0
            self.env.cr.commit()  # the claim may start a new transaction (_claim)
        done = super()._cron_sync(batch_size=batch_size, time_budget=time_budget)
        others = workers.filtered(lambda c: c.id != self.env.context.get("cron_id"))
        if done and others and self._count_due() > 0:
            now = fields.Datetime.now()
            for cron in others:
                if not cron.nextcall or cron.nextcall > now:
                    cron._trigger()
        return done
