"""Test hook: name the steps of a sync so that a test can SIGKILL the process at one of them.

A no-op unless one of these environment variables is set (never in production):

- ``CRM_MAIL_SYNC_CRASH_AT=<step>[:<n>]`` — the process kills itself with SIGKILL (no exception,
  no cleanup, no rollback: what a power cut or the OOM killer does) the ``n``-th time (default 1)
  it reaches ``step``; ``bodies@<mailbox id>/<folder>/<uid>``: whenever the bodies of a group
  holding that message are about to be read (a message that kills the worker whenever it is
  read).
- ``CRM_MAIL_SYNC_TRACE=<file>`` — every step reached is appended to ``file`` as one line
  ``<time.time()> <pid> <thread id> <step> <mailbox id>`` (used to prove that two workers never
  sync the same mailbox at once).

The steps, in the order one batch of a mailbox goes through them (one call site each, in
``models/mail_sync_mailbox.py`` and ``models/mail_sync_message.py``):

``claimed``        the cron claimed its mailboxes (row lock + advisory lock held)
``sync_start``     the sync of one mailbox begins
``headers``        the headers of a batch were fetched (the matcher is about to run)
``bodies``         the UIDs of a group of bodies are marked in flight (committed); their bodies
                   are about to be fetched
``parsed``         the wanted bodies of the batch were fetched and parsed (recorder entry)
``recorded_some``  the chatter entries of the batch were created, the registry rows not yet
``recorded``       the batch's chatter entries and registry rows are written
``before_commit``  the folder cursor is written too; the transaction is not committed yet
``committed``      the batch and its cursor are committed
``sync_end``       the sync of one mailbox is over (status written)

Used by ``tests/scale/crash.py`` and ``tests/scale/scaleout.py``.
"""

from __future__ import annotations

import os
import signal
import threading
import time

CRASH_ENV = "CRM_MAIL_SYNC_CRASH_AT"
TRACE_ENV = "CRM_MAIL_SYNC_TRACE"

STEPS = (
    "claimed",
    "sync_start",
    "headers",
    "bodies",
    "parsed",
    "recorded_some",
    "recorded",
    "before_commit",
    "committed",
    "sync_end",
)

_reached: dict[str, int] = {}


def reached(step: str, mailbox_id=None, uids=(), folder=None) -> None:
    """Mark ``step`` as reached; see the module docstring. Costs two dict lookups when unused."""
    env = os.environ
    trace = env.get(TRACE_ENV)
    spec = env.get(CRASH_ENV)
    if not trace and not spec:
        return
    if trace:
        line = f"{time.time():.6f} {os.getpid()} {threading.get_ident()} {step} {mailbox_id}\n"
        fd = os.open(trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    if spec:
        name, _, nth = spec.partition(":")
        name, _, place = name.partition("@")
        if name == step and place:
            mailbox, _, rest = place.partition("/")
            folder_name, _, uid = rest.rpartition("/")
            if (
                str(mailbox) == str(mailbox_id)
                and folder_name == folder
                and int(uid) in {int(u) for u in uids}
            ):
                os.kill(os.getpid(), signal.SIGKILL)
        elif name == step:
            _reached[step] = _reached.get(step, 0) + 1
            if _reached[step] >= int(nth or 1):
                os.kill(os.getpid(), signal.SIGKILL)
