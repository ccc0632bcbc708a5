# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Fast arrival's second check: a one-shot timer in this process that sends Odoo's
``cron_trigger`` NOTIFY half a minute after a run, so that the cron thread wakes up for the
trigger set then (Odoo's cron thread otherwise wakes up every 60 s plus jitter). No thread holds
a cron worker or an IMAP connection in between. ARCHITECTURE.md: fast arrival."""

import logging
import threading

_logger = logging.getLogger(__name__)

_wakeups = {}  # db name -> pending threading.Timer (one per database and process)
_wakeups_lock = threading.Lock()


def _notify_cron(dbname):
    """Wake up the cron threads/workers listening on ``cron_trigger`` (like ir.cron._notifydb)."""
    import odoo.sql_db
    from odoo.tools import SQL

    from odoo.addons.base.models.ir_cron import ODOO_NOTIFY_FUNCTION

    with _wakeups_lock:
        _wakeups.pop(dbname, None)
    try:
        with odoo.sql_db.db_connect("postgres").cursor() as cr:
            cr.execute(
                SQL("SELECT %s('cron_trigger', %s)", SQL.identifier(ODOO_NOTIFY_FUNCTION), dbname)
            )
    except Exception:  # noqa: BLE001 - the regular schedule still runs
        _logger.warning("Mail Sync: could not wake up the cron for the second check", exc_info=True)


def schedule_wakeup(dbname, delay):
    with _wakeups_lock:
        if dbname in _wakeups:
            return False
        timer = threading.Timer(delay, _notify_cron, args=(dbname,))
        timer.daemon = True
        _wakeups[dbname] = timer
    timer.start()
    return True
