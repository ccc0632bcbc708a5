#!/usr/bin/env python3
"""Verdict on an ``odoo-bin --test-tags … --stop-after-init`` log (used by tools/test.sh).

    python tools/odoo_log_check.py ODOO_LOG EXIT_CODE [--module crm_mail_sync] [--report FILE]

Prints ``PASSED FAILED`` on stdout; writes the reasons to ``--report`` (or stderr).
Failed counts: the failures and errors of ``odoo.tests.result: N failed, N error(s) of N tests``,
plus one for each of these (when not already explained by a failing test):

- the run's exit code is not 0, or no result line / no test at all;
- an ``ERROR`` or ``CRITICAL`` line;
- a ``WARNING`` from loading the module: any WARNING between ``Loading module <module>`` and
  its first test (or ``Module <module> loaded``) — missing access rules, view or field
  problems, deprecated syntax —, any WARNING from ``odoo.modules.*``, and any other WARNING
  that names the module (an asset path of its manifest, a Python warning raised from its
  files) unless the module's own loggers wrote it. Core warnings that also occur without
  the module (``KNOWN_CORE_WARNINGS``, checked against a plain ``-i crm`` run) are ignored.
"""

from __future__ import annotations

import argparse
import re
import sys

LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) (?P<pid>\d+) (?P<level>[A-Z]+) "
    r"(?P<db>\S+) (?P<logger>[\w.]+): (?P<msg>.*)$"
)
RESULT = re.compile(r"(\d+) failed, (\d+) error\(s\) of (\d+) tests")

# WARNINGs that a plain `odoo-bin -i crm --test-tags /crm` on this Odoo also prints (so they say
# nothing about this addon). Regexes on "logger: message".
KNOWN_CORE_WARNINGS = [
    # Running as root is a deployment choice of the test machine.
    r"^odoo: Running as user 'root' is a security risk",
]


def parse(lines):
    records = []
    current = None
    for raw in lines:
        raw = raw.rstrip("\n")
        match = LINE.match(raw)
        if match:
            current = dict(match.groupdict(), extra=[])
            records.append(current)
        elif current is not None:
            current["extra"].append(raw)
    return records


def check(text, exit_code, module="crm_mail_sync"):
    records = parse(text.splitlines())
    problems = []
    result = None
    for rec in records:
        if rec["logger"] == "odoo.tests.result":
            found = RESULT.search(rec["msg"])
            if found:
                result = tuple(int(x) for x in found.groups())
    failed = errors = total = 0
    if result:
        failed, errors, total = result
    bad = failed + errors

    # Loading warnings: the window between "Loading module <module>" and its first test.
    in_window = False
    loading_warnings = []
    for rec in records:
        msg = rec["msg"]
        if rec["logger"] == "odoo.modules.loading" and re.match(
            rf"Loading module {module} \(", msg
        ):
            in_window = True
        elif in_window and (
            rec["logger"] == "odoo.modules.loading"
            and msg.startswith(f"Module {module} loaded")
            or msg.startswith("Starting ")
        ):
            in_window = False
        if rec["level"] != "WARNING":
            continue
        text_of = f"{rec['logger']}: {msg}"
        if any(re.search(p, text_of) for p in KNOWN_CORE_WARNINGS):
            continue
        # Outside the window, a WARNING that names the module (e.g. an asset glob of its
        # manifest, a deprecation raised from its files) unless the module logged it itself
        # (runtime warnings of its own code under test are legitimate). \b keeps the test
        # database's name (crm_mail_sync_test_…) from matching.
        full = msg + "\n" + "\n".join(rec["extra"])
        names_module = re.search(rf"\b{re.escape(module)}\b", full) and not rec[
            "logger"
        ].startswith(f"odoo.addons.{module}")
        if in_window or rec["logger"].startswith("odoo.modules.") or names_module:
            if rec["logger"] == "odoo.tests.result":
                continue
            loading_warnings.append(rec)

    error_lines = [
        r
        for r in records
        if r["level"] in ("ERROR", "CRITICAL") and r["logger"] != "odoo.tests.result"
    ]
    if loading_warnings:
        distinct = {}
        for rec in loading_warnings:
            distinct.setdefault(f"{rec['logger']}: {rec['msg']}", [rec, 0])[1] += 1
        problems.append(
            f"{len(loading_warnings)} WARNING line(s) about {module} "
            f"({len(distinct)} distinct; each distinct one counts as a failure):"
        )
        problems += [_show(rec) + (f"   (x{n})" if n > 1 else "") for rec, n in distinct.values()]
        bad += len(distinct)
    if error_lines:
        problems.append(f"{len(error_lines)} ERROR/CRITICAL line(s) in the Odoo log:")
        problems += [_show(r) for r in error_lines[:40]]
        if len(error_lines) > 40:
            problems.append(f"  … and {len(error_lines) - 40} more")
        if failed + errors == 0:
            bad += 1  # errors that no failing test accounts for
    if result is None:
        problems.append("no 'odoo.tests.result' line: the run did not get to the end")
        bad = max(bad, 1)
    elif total == 0:
        problems.append("no Odoo test ran (check ODOO_TEST_TAGS)")
        bad = max(bad, 1)
    if exit_code != 0:
        problems.append(f"odoo-bin exited with code {exit_code}")
        bad = max(bad, 1)
    passed = max(total - failed - errors, 0)
    return passed, bad, problems


def _show(rec, context=6):
    head = f"  {rec['level']} {rec['logger']}: {rec['msg']}"
    extra = [f"      {line}" for line in rec["extra"][:context]]
    if len(rec["extra"]) > context:
        extra.append(f"      … ({len(rec['extra']) - context} more lines)")
    return "\n".join([head, *extra])


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("log")
    parser.add_argument("exit_code", type=int)
    parser.add_argument("--module", default="crm_mail_sync")
    parser.add_argument("--report")
    args = parser.parse_args(argv)
    with open(args.log, errors="replace") as fh:
        text = fh.read()
    passed, failed, problems = check(text, args.exit_code, args.module)
    report = "\n".join(problems) + ("\n" if problems else "")
    if args.report:
        with open(args.report, "w") as fh:
            fh.write(report)
    else:
        sys.stderr.write(report)
    print(passed, failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
