#!/usr/bin/env python3
# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The long tests against real Odoo + PostgreSQL + Dovecot (the "scale" layer).

    $ODOO_HOME/venv/bin/python tests/scale/run.py [--long] [--only crash|scaleout|shuffle|upgrade]
                                                  [--seed N] [--json PATH]

- ``crash``: SIGKILL at every step of a batch and at random moments, resume, compare
  (``tests/scale/crash.py``);
- ``scaleout``: 200 mailboxes backfilled by one, then two ``odoo-bin`` servers on the same
  database (``tests/scale/scaleout.py``);
- ``shuffle``: the ``from . import`` lines of ``models/__init__.py`` shuffled (``--seed``, else
  a random seed, printed), installed with ``odoo-bin -i`` and a part of the Odoo tests run there
  (``tests/scale/architecture.py``);
- ``upgrade``: the last commit before the one-file-per-model restructuring installed from a
  ``git worktree``, mailboxes with secrets synced, ``odoo-bin -u`` with the working tree on the
  same database: everything kept, a new email recorded once (``tests/scale/architecture.py``).

Installs crm_mail_sync once (``--without-demo all``) into a template database for the crash and
scale-out parts, copies it for each of them (``createdb -T``) and drops everything at the end
(shuffle and upgrade install into databases of their own). Uses its own Dovecot instances
(loopback, free ports). Needs root (Dovecot's Maildirs belong to the ``mail`` user), like the
benchmark. ``--long``: more crash points, 20 random-kill rounds, 30 messages per mailbox.

Prints one line per check, then ``scale: N passed, N failed``; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true")
    parser.add_argument("--only", choices=("crash", "scaleout", "shuffle", "upgrade"))
    parser.add_argument(
        "--seed", type=int, help="shuffle: the seed of the import order (default: random, printed)"
    )
    parser.add_argument(
        "--template",
        help="an existing database with crm_mail_sync installed (not dropped; saves the install)",
    )
    parser.add_argument("--mailboxes", type=int, default=200)
    parser.add_argument(
        "--rtt-ms",
        type=int,
        help="IMAP round trip of the scale-out's mailboxes, through a delaying "
        "relay (default 5, --long 20; 0: Dovecot on loopback directly)",
    )
    parser.add_argument("--json", help="write the figures there")
    args = parser.parse_args(argv)
    if args.rtt_ms is None:
        args.rtt_ms = 20 if args.long else 5

    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="crm_mail_sync-scale-run-")
    os.chmod(tmp, 0o755)
    template = args.template or f"crm_mail_sync_scale_{os.getpid()}"
    checks = []  # (name, ok, detail)
    figures = {}
    needs_template = args.only in (None, "crash", "scaleout")
    try:
        if args.template or not needs_template:
            addons_path = common.bench.addons_path(tmp)
        else:
            addons_path = common.install_template(template, tmp)
        cache = {}

        def odoo_factory(db):
            if db not in cache:
                cache[db] = common.Odoo(db, addons_path)
            return cache[db]

        if args.only in (None, "crash"):
            import crash

            t = time.monotonic()
            res = crash.run(odoo_factory, template, long=args.long)
            figures["crash"] = res
            zero = res["lost"] == 0 and res["duplicated"] == 0 and res["unexpected"] == 0
            checks.append(
                (
                    "crash points: killed at every step, resumed, nothing lost or duplicated",
                    res["crash_points_killed"] == res["crash_points"]
                    and zero
                    and not [f for f in res["failures"] if not f[0].startswith("random")],
                    f"{res['crash_points_killed']}/{res['crash_points']} points killed",
                )
            )
            checks.append(
                (
                    "random kills: resumed, nothing lost or duplicated",
                    zero and not [f for f in res["failures"] if f[0].startswith("random")],
                    f"{res['random_kills']} kills in {res['random_rounds']} rounds",
                )
            )
            checks.append(
                (
                    "crash: a message in flight at two kills is skipped, the rest and the "
                    "other mailboxes synced, the retry records it",
                    not res["poison"],
                    "; ".join(res["poison"]),
                )
            )
            checks.append(
                (
                    "crash: advisory lock free after each kill, resuming run claims it",
                    not [
                        f
                        for f in res["failures"]
                        if any("lock" in p or "synced 0" in p for p in f[1])
                    ],
                    "",
                )
            )
            for label, problems in res["failures"]:
                print(f"    {label}: {'; '.join(problems)}")
            print(
                f"crash: {res['crash_points']} crash points, {res['random_kills']} random kills "
                f"({res['random_rounds']} rounds), {res['expected_pairs']} expected pairs each "
                f"time: lost {res['lost']}, duplicated {res['duplicated']}, unexpected "
                f"{res['unexpected']} ({time.monotonic() - t:.0f}s)"
            )
        if args.only in (None, "scaleout"):
            import scaleout

            t = time.monotonic()
            res = scaleout.run(
                odoo_factory,
                template,
                addons_path,
                long=args.long,
                mailboxes=args.mailboxes,
                rtt_ms=args.rtt_ms,
            )
            figures["scaleout"] = res
            one, two = res["runs"][:2]
            for run in res["runs"]:
                checks.append(
                    (
                        f"scale-out, {run['label']}: every mailbox synced, nothing lost "
                        f"or duplicated, no mailbox in two workers at once",
                        not run["problems"],
                        "; ".join(run["problems"]),
                    )
                )
            checks.append(
                (
                    "scale-out: two servers finish the backfill faster than one",
                    res["faster"],
                    f"{one.get('wall_s', 0):.1f}s vs {two.get('wall_s', 0):.1f}s",
                )
            )
            print(
                f"scale-out: {res['mailboxes']} mailboxes x {res['messages']} messages, IMAP "
                f"round trip {res['rtt_ms']} ms: "
                f"1 server {one.get('wall_s', 0):.1f}s, 2 servers {two.get('wall_s', 0):.1f}s "
                f"(x{res['speedup'] or 0:.2f}; mailboxes per server {two.get('per_server')}, "
                f"busy s per server {one.get('busy_s')} / {two.get('busy_s')}), "
                f"overlaps {one.get('overlaps')}/{two.get('overlaps')}, duplicated "
                f"{one.get('duplicated')}/{two.get('duplicated')}, lost "
                f"{one.get('lost')}/{two.get('lost')} ({time.monotonic() - t:.0f}s)"
            )
            if len(res["runs"]) > 2:
                k = res["runs"][2]
                print(
                    f"scale-out, {k['label']}: all synced in {k.get('wall_s', 0):.1f}s "
                    f"(kill at {k.get('killed_after_s', 0):.1f}s), mailboxes per server "
                    f"{k.get('per_server')}, overlaps {k.get('overlaps')}, duplicated "
                    f"{k.get('duplicated')}, lost {k.get('lost')}"
                )
        if args.only in (None, "shuffle"):
            import architecture

            t = time.monotonic()
            res = architecture.run_shuffle(seed=args.seed)
            figures["shuffle"] = res
            for problem in res["problems"]:
                print(f"    {problem}")
            checks.append(
                (
                    f"shuffle: models/__init__.py imported in another order (seed "
                    f"{res['seed']}): installs, the chosen Odoo tests pass",
                    not res["problems"] and res.get("passed", 0) > 0,
                    f"{res.get('passed', 0)} passed, {res.get('failed', 0)} failed"
                    + (f"; log {res['log']}" if res.get("log") else ""),
                )
            )
            again = res.get("unshuffled")
            print(
                f"shuffle: seed {res['seed']}, order {', '.join(res.get('order', []))}; "
                f"{len(architecture.SHUFFLE_TAGS)} test classes: {res.get('passed', 0)} passed,"
                f" {res.get('failed', 0)} failed"
                + (
                    f"; {', '.join(again['classes'])} in the original order: "
                    f"{again['passed']} passed, {again['failed']} failed"
                    if again
                    else ""
                )
                + f" ({time.monotonic() - t:.0f}s)"
            )
        if args.only in (None, "upgrade"):
            import architecture

            t = time.monotonic()
            res = architecture.run_upgrade()
            figures["upgrade"] = res
            for problem in res["problems"]:
                print(f"    {problem}")
            checks.append(
                (
                    f"upgrade from {architecture.UPGRADE_FROM} in place: mailboxes, "
                    f"secrets, cursors, synced mail kept; a new email recorded once",
                    not res["problems"],
                    res.get("log", ""),
                )
            )
            print(
                f"upgrade: from {res.get('from')}; before the upgrade "
                f"{res.get('before')}; install {res.get('install_s')}s, -u "
                f"{res.get('upgrade_s')}s ({len(res.get('upgrade_warnings') or [])} warning(s) "
                f"naming the addon); new email: {res.get('new_chatter_entries')} chatter "
                f"entr(ies) ({time.monotonic() - t:.0f}s)"
            )
            for warning in res.get("upgrade_warnings") or []:
                print(f"    -u warning: {warning}")
    except SystemExit as exc:
        checks.append(("scale layer ran to the end", False, str(exc)))
    finally:
        for odoo in list(locals().get("cache", {}).values()):
            odoo.close_connections()
        if not args.template and needs_template:
            common.drop_db(template)
        shutil.rmtree(tmp, ignore_errors=True)

    for name, ok, detail in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f" ({detail})" if detail else ""))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=1, default=str)
    passed = sum(1 for _n, ok, _d in checks if ok)
    failed = len(checks) - passed
    print(f"total {time.monotonic() - started:.0f}s")
    print(f"scale: {passed} passed, {failed} failed")
    return 1 if failed or not checks else 0


if __name__ == "__main__":
    sys.exit(main())
