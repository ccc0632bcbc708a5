#!/usr/bin/env python3
"""The packaging check of crm_mail_sync (the "packaging" layer of tools/test.sh):

    /opt/odoo/venv/bin/python tools/check_wheel.py [--work-dir DIR] [--keep] [--no-odoo]

1. build     ``pip wheel --no-deps .`` with the whool backend of pyproject.toml, in a copy of the
             checkout named crm_mail_sync (whool names the addon after its directory) holding the
             files git tracks plus the new ones it does not ignore (what a commit would hold), in
             a throwaway git repository there (whool ships what ``git ls-files`` lists):
             exactly odoo_addon_crm_mail_sync-<manifest version>-py3-none-any.whl.
2. metadata  the wheel's name and version; its Requires-Dist are requirements.txt's packages
             with the same version ranges, and every one of them is in the manifest's
             external_dependencies (and the other way round).
3. contents  the files under odoo/addons/crm_mail_sync/ are the files git lists (pyproject.toml
             excepted), including the manifest, its data files and its assets; no run output,
             caches, bench results or virtualenvs (.run/, bench/out/, .hypothesis/, __pycache__,
             *.pyc, *.log, venvs).
4. venv      a throwaway venv that sees Odoo's venv and Odoo's source through a .pth file;
             ``pip install --no-deps --no-index`` of the wheel; odoo.addons.crm_mail_sync then
             resolves into that venv's site-packages (not the checkout), and every Requires-Dist
             is met by the packages Odoo's venv has.
5. odoo      that venv's Python runs odoo-bin on a fresh database with Odoo's own addons only
             (--addons-path without the checkout): -i crm_mail_sync --test-tags
             /crm_mail_sync:TestInstall, judged by tools/odoo_log_check.py; the database is
             dropped afterwards.

Prints "ok NAME" or "FAIL NAME: why" per check, then "packaging: N passed, N failed"; exits 1
when a check failed. Needs Odoo at $ODOO_HOME (default /opt/odoo), PostgreSQL, and PyPI (pip
fetches whool into its build environment). The install test uses $MAILSYNC_DOVECOT when set
(tools/test.sh), else starts its own Dovecot.
"""

from __future__ import annotations

import argparse
import ast
import email.parser
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ODOO_HOME = os.environ.get("ODOO_HOME", "/opt/odoo")
ADDON = "crm_mail_sync"
DIST = "odoo_addon_" + ADDON
INSTALL_TEST_TAGS = f"/{ADDON}:TestInstall"
# Never in a wheel: run output, caches, bench results, virtualenvs, VCS data.
FORBIDDEN = re.compile(
    r"(^|/)(\.run|\.hypothesis|\.pytest_cache|\.mypy_cache|\.ruff_cache|__pycache__|\.git|"
    r"\.venv|venv|node_modules|build)(/|$)"
    r"|^bench/out(/|$)|\.py[co]$|\.log$|\.whl$|(^|/)pyvenv\.cfg$|\.egg-info(/|$)"
)


class CheckFailed(Exception):
    pass


def run(cmd, log=None, timeout=600, **kwargs):
    """Runs cmd, its output kept in the file ``log`` (or returned). Raises CheckFailed with the
    tail of that output when cmd fails."""
    try:
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            **kwargs,
        )
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"{' '.join(cmd[:5])} … timed out after {timeout}s") from None
    if log:
        with open(log, "w") as f:
            f.write(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        raise CheckFailed(f"{' '.join(cmd[:5])} … exited {proc.returncode}:\n{tail}")
    return proc.stdout


def manifest():
    with open(os.path.join(REPO, "__manifest__.py"), encoding="utf-8") as f:
        return ast.literal_eval(f.read())


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_set(lines):
    """{normalized name: sorted specifiers} of requirement lines (comments, markers ignored)."""
    reqs = {}
    for line in lines:
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if not line or line.startswith("-"):  # blank, comment, pip option (-r, -c, --hash…)
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)$", line)
        name, spec = match.groups()
        reqs[norm(name)] = ",".join(sorted(s.strip() for s in spec.split(",") if s.strip()))
    return reqs


def source_files():
    """What git would commit from the checkout: tracked files plus untracked, not ignored ones."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise CheckFailed(
            f"{REPO} is not a git checkout (whool packs the files git lists): {e}"
        ) from None
    files = sorted({f for f in out.decode().split("\0") if f})
    return [f for f in files if os.path.lexists(os.path.join(REPO, f))]  # not deleted ones


# ---- 1. build ----------------------------------------------------------------------------------
def check_build(work):
    files = source_files()
    src = os.path.join(work, "src", ADDON)
    os.makedirs(src)
    for f in files:
        os.makedirs(os.path.dirname(os.path.join(src, f)), exist_ok=True)
        shutil.copy2(os.path.join(REPO, f), os.path.join(src, f), follow_symlinks=False)
    # A throwaway repository in the copy, so whool's own `git ls-files` picks the files.
    env = dict(
        os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_LITERAL_PATHSPECS="1"
    )
    run(["git", "init", "-q"], cwd=src, env=env)
    run(
        ["git", "add", "-f", "--pathspec-from-file=-", "--pathspec-file-nul"],
        cwd=src,
        env=env,
        input="\0".join(files),
    )
    dist = os.path.join(work, "dist")
    t0 = time.time()
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            dist,
            ".",
        ],
        log=os.path.join(work, "pip-wheel.log"),
        cwd=src,
        timeout=300,
    )
    version = manifest()["version"]
    wheels = sorted(os.listdir(dist))
    expected = f"{DIST}-{version}-py3-none-any.whl"
    if wheels != [expected]:
        raise CheckFailed(f"expected {expected} in {dist}, found {wheels}")
    return os.path.join(dist, expected), files, f"{expected} in {time.time() - t0:.0f}s"


# ---- 2. metadata -------------------------------------------------------------------------------
def check_metadata(wheel):
    version = manifest()["version"]
    with zipfile.ZipFile(wheel) as zf:
        meta = email.parser.HeaderParser().parsestr(
            zf.read(f"{DIST}-{version}.dist-info/METADATA").decode()
        )
    problems = []
    if norm(meta["Name"]) != norm(DIST):
        problems.append(f"Name {meta['Name']!r}")
    if meta["Version"] != version:
        problems.append(f"Version {meta['Version']} is not the manifest's {version}")
    wheel_reqs = requirement_set(meta.get_all("Requires-Dist") or [])
    with open(os.path.join(REPO, "requirements.txt"), encoding="utf-8") as f:
        runtime = requirement_set(f)
    for name in sorted(set(runtime) | set(wheel_reqs)):
        if name not in wheel_reqs:
            problems.append(f"requirements.txt's {name} is not a dependency of the wheel")
        elif name not in runtime:
            problems.append(
                f"the wheel depends on {name}{wheel_reqs[name]}, "
                "which requirements.txt does not list"
            )
        elif runtime[name] != wheel_reqs[name]:
            problems.append(
                f"{name}: wheel requires {wheel_reqs[name]!r}, "
                f"requirements.txt {runtime[name]!r} (pyproject.toml "
                "[tool.whool.external_dependencies_override])"
            )
    external = {norm(n) for n in manifest().get("external_dependencies", {}).get("python", [])}
    for name in sorted(set(runtime) - external):
        problems.append(
            f"requirements.txt's {name} is missing from the manifest's "
            "external_dependencies['python']"
        )
    for name in sorted(external - set(runtime)):
        problems.append(f"the manifest's external dependency {name} is not in requirements.txt")
    if problems:
        raise CheckFailed("; ".join(problems))
    return f"{meta['Name']} {meta['Version']}, requires " + ", ".join(
        n + s for n, s in sorted(wheel_reqs.items())
    )


# ---- 3. contents -------------------------------------------------------------------------------
def check_contents(wheel, files):
    prefix = f"odoo/addons/{ADDON}/"
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
    problems = []
    outside = [n for n in names if not n.startswith(prefix) and ".dist-info/" not in n]
    if outside:
        problems.append(f"files outside {prefix}: {outside[:5]}")
    shipped = {n[len(prefix) :] for n in names if n.startswith(prefix)}
    expected = set(files) - {"pyproject.toml"}
    if shipped - expected:
        problems.append(f"not from git: {sorted(shipped - expected)[:10]}")
    if expected - shipped:
        problems.append(f"missing: {sorted(expected - shipped)[:10]}")
    junk = sorted(n for n in shipped if FORBIDDEN.search(n))
    if junk:
        problems.append(f"must not ship (run output, caches, venvs, bench results): {junk[:10]}")
    man = manifest()
    required = ["__init__.py", "__manifest__.py"] + list(man.get("data", []))
    problems += [f"manifest file missing: {f}" for f in required if f not in shipped]
    for bundle, globs in man.get("assets", {}).items():
        for pattern in globs:
            if isinstance(pattern, str) and pattern.startswith(ADDON + "/"):
                regex = (
                    re.escape(pattern[len(ADDON) + 1 :])
                    .replace(r"\*\*/", "(.*/)?")
                    .replace(r"\*", "[^/]*")
                )
                if not any(re.fullmatch(regex, n) for n in shipped):
                    problems.append(f"no file of the {bundle} asset {pattern}")
    if "pyproject.toml" in shipped:
        problems.append("pyproject.toml shipped")
    if problems:
        raise CheckFailed("; ".join(problems))
    return f"{len(shipped)} files of the addon, nothing else"


# ---- 4. venv -----------------------------------------------------------------------------------
PROBE = r"""
import importlib.metadata, importlib.util, json, sys
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
import odoo
from odoo.tools import config
config.parse_config(["--addons-path=" + sys.argv[1]])
from odoo.modules.module import get_module_path
spec = importlib.util.find_spec("odoo.addons.crm_mail_sync")
unmet = []
for line in importlib.metadata.requires("odoo-addon-crm_mail_sync") or []:
    req = Requirement(line)
    try:
        found = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        unmet.append(f"{line} (not installed)")
        continue
    if req.specifier and not req.specifier.contains(found, prereleases=True):
        unmet.append(f"{line} (installed: {found})")
print(json.dumps({"module_path": get_module_path("crm_mail_sync"), "origin": spec.origin,
                  "odoo": odoo.__file__, "unmet": unmet}))
"""


def odoo_addons_path():
    paths = [os.path.join(ODOO_HOME, "src", "odoo", "addons")]
    if os.path.isdir(os.path.join(ODOO_HOME, "src", "addons")):
        paths.append(os.path.join(ODOO_HOME, "src", "addons"))
    return ",".join(paths)


def check_venv(work, wheel):
    import json

    odoo_python = os.path.join(ODOO_HOME, "venv", "bin", "python")
    odoo_site = subprocess.run(
        [odoo_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    venv = os.path.join(work, "venv")
    run([odoo_python, "-m", "venv", venv])
    python = os.path.join(venv, "bin", "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # After the venv's own site-packages: Odoo's venv (with its own .pth files) and Odoo's source.
    with open(os.path.join(site, "zz_odoo_environment.pth"), "w") as f:
        f.write(f"import site; site.addsitedir({odoo_site!r})\n{os.path.join(ODOO_HOME, 'src')}\n")
    run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "-q",
            wheel,
        ],
        log=os.path.join(work, "pip-install.log"),
    )
    out = run([python, "-c", PROBE, odoo_addons_path()], cwd=work)
    probe = json.loads(out.strip().splitlines()[-1])
    installed = os.path.join(site, "odoo", "addons", ADDON)
    problems = []
    if os.path.realpath(probe["module_path"] or "") != os.path.realpath(installed):
        problems.append(f"Odoo finds {ADDON} at {probe['module_path']}, not at {installed}")
    if not (probe["origin"] or "").startswith(installed + os.sep):
        problems.append(f"odoo.addons.{ADDON} imports from {probe['origin']}, not the wheel")
    if os.path.realpath(probe["origin"] or "").startswith(os.path.realpath(REPO) + os.sep):
        problems.append(f"odoo.addons.{ADDON} imports from the checkout {REPO}")
    problems += [f"dependency not met by Odoo's venv: {u}" for u in probe["unmet"]]
    if problems:
        raise CheckFailed("; ".join(problems))
    return python, installed, f"{ADDON} from {installed}; Requires-Dist met by {odoo_site}"


# ---- 5. odoo -----------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drop_database(db):
    for cmd in (
        ["dropdb", "--if-exists", db],
        ["psql", "-q", "-d", "postgres", "-c", f'DROP DATABASE IF EXISTS "{db}"'],
    ):
        try:
            if subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0:
                return
        except (OSError, subprocess.TimeoutExpired):
            pass


def check_odoo(work, python, installed):
    db = f"{ADDON}_wheel_{time.strftime('%Y%m%d%H%M%S')}_{os.getpid()}"
    log = os.path.join(work, "odoo-wheel.log")
    addons_path = odoo_addons_path()
    if os.path.realpath(REPO) in [os.path.realpath(p) for p in addons_path.split(",")]:
        raise CheckFailed("the addons path includes the checkout")
    cmd = [
        python,
        os.path.join(ODOO_HOME, "src", "odoo-bin"),
        f"--addons-path={addons_path}",
        f"--data-dir={os.path.join(work, 'odoo-data')}",
        "-d",
        db,
        "-i",
        ADDON,
        "--test-tags",
        INSTALL_TEST_TAGS,
        "--stop-after-init",
        "--log-level=test",
        f"--http-port={free_port()}",
        "--http-interface=127.0.0.1",
        "--max-cron-threads=0",
        "--workers=0",
    ]
    t0 = time.time()
    try:
        with open(log, "w") as out:
            try:
                rc = subprocess.run(
                    cmd, stdout=out, stderr=subprocess.STDOUT, cwd=work, timeout=900
                ).returncode
            except subprocess.TimeoutExpired:
                raise CheckFailed(f"odoo-bin timed out (log: {log})") from None
    finally:
        drop_database(db)
    text = open(log, errors="replace").read()
    report = os.path.join(work, "odoo-wheel-problems.txt")
    verdict = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tools", "odoo_log_check.py"),
            log,
            str(rc),
            "--module",
            ADDON,
            "--report",
            report,
        ],
        capture_output=True,
        text=True,
    )
    try:
        passed, failed = (int(x) for x in verdict.stdout.split()[:2])
    except ValueError:
        passed, failed = 0, 1
    problems = []
    if failed or not passed:
        why = open(report, errors="replace").read().strip() if os.path.exists(report) else ""
        problems.append(
            f"TestInstall: {passed} passed, {failed} failed (exit {rc})"
            + (f"\n{why}" if why else "")
        )
    paths = re.search(r"odoo: addons paths: (\[.*\])", text)
    if not paths:
        problems.append("no 'addons paths' line in the log")
    else:
        listed = ast.literal_eval(paths.group(1))
        if any(
            os.path.realpath(p) == os.path.realpath(REPO)
            or os.path.exists(os.path.join(p, ADDON))
            and os.path.realpath(os.path.join(p, ADDON)) == os.path.realpath(REPO)
            for p in listed
        ):
            problems.append(f"Odoo's addons paths reach the checkout: {listed}")
        if os.path.dirname(installed) not in listed:
            problems.append(f"Odoo's addons paths lack the wheel's {os.path.dirname(installed)}")
    if problems:
        raise CheckFailed("\n".join(problems) + f"\n(log: {log})")
    return f"-i {ADDON} --test-tags {INSTALL_TEST_TAGS}: {passed} passed in {time.time() - t0:.0f}s"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", help="where to build (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--no-odoo",
        action="store_true",
        help="checks 1-4 only: no database, no odoo-bin (a few seconds)",
    )
    args = parser.parse_args()
    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)
        work = tempfile.mkdtemp(prefix="packaging.", dir=args.work_dir)
    else:
        work = tempfile.mkdtemp(prefix="crm_mail_sync-packaging.")
    passed = failed = 0
    state = {}

    def step(name, func, *needs):
        nonlocal passed, failed
        if any(n not in state for n in needs):
            print(f"FAIL {name}: not run (an earlier check failed)", flush=True)
            failed += 1
            return
        t0 = time.time()
        try:
            result = func()
        except CheckFailed as e:
            print(f"FAIL {name}: {e}", flush=True)
            failed += 1
            return
        *values, detail = result if isinstance(result, tuple) else (result,)
        state[name] = values
        print(f"ok {name} ({time.time() - t0:.0f}s): {detail}", flush=True)
        passed += 1

    try:
        step("build", lambda: check_build(work))
        step("metadata", lambda: check_metadata(state["build"][0]), "build")
        step("contents", lambda: check_contents(*state["build"]), "build")
        step("venv", lambda: check_venv(work, state["build"][0]), "build")
        if not args.no_odoo:
            step("odoo", lambda: check_odoo(work, *state["venv"]), "venv")
    finally:
        if args.keep or failed:
            print(f"work directory kept: {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"packaging: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
