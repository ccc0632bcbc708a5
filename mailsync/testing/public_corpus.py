"""Public corpora of real broken and unusual e-mails, fetched at test time (never committed).

:func:`mail_parser_mails` returns the test mails shipped in the source distribution of the
``mail-parser`` package (``tests/mails/`` of the sdist: malformed messages, an Outlook ``.msg``,
odd encodings). The sdist is fetched once with ``pip download --no-deps --no-binary :all:``
into a cache outside the repository (``$XDG_CACHE_HOME/crm_mail_sync/corpora``, else
``~/.cache/crm_mail_sync/corpora``; ``MAILSYNC_CORPORA`` overrides) and checked against its
SHA-256. Pre-fetch (e.g. in CI before going offline)::

    python -m mailsync.testing.public_corpus
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile

__all__ = ["MAIL_PARSER_VERSION", "CorpusUnavailable", "cache_dir", "mail_parser_mails"]

MAIL_PARSER_VERSION = "4.8.0"
MAIL_PARSER_SHA256 = "602e659b159652d378b0f9cce2d682bee692bedae72687786e2b2e52eaeb9afc"


class CorpusUnavailable(RuntimeError):
    """The corpus could not be fetched (no network, registry down …)."""


def cache_dir() -> str:
    base = os.environ.get("MAILSYNC_CORPORA")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "crm_mail_sync", "corpora")
    os.makedirs(base, exist_ok=True)
    return base


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sdist(version, sha256, timeout) -> str:
    directory = cache_dir()
    path = os.path.join(directory, f"mail_parser-{version}.tar.gz")
    if os.path.exists(path) and (sha256 is None or _sha256(path) == sha256):
        return path
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        directory,
        f"mail-parser=={version}",
    ]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CorpusUnavailable(f"pip download mail-parser=={version} failed: {e}") from None
    if result.returncode != 0 or not os.path.exists(path):
        tail = (result.stderr or result.stdout or "").strip().splitlines()[-3:]
        raise CorpusUnavailable(f"pip download mail-parser=={version} failed: " + " | ".join(tail))
    if sha256 is not None and _sha256(path) != sha256:
        os.remove(path)
        raise CorpusUnavailable(f"mail-parser {version} sdist does not match its pinned SHA-256")
    return path


def mail_parser_mails(version=MAIL_PARSER_VERSION, sha256=MAIL_PARSER_SHA256, timeout=120):
    """``[(name, raw bytes)]`` of every file under ``tests/mails/`` of the mail-parser sdist,
    sorted by name. Raises :class:`CorpusUnavailable` when it cannot be fetched."""
    path = _sdist(version, sha256, timeout)
    out = []
    with tarfile.open(path, "r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if member.isfile() and len(parts) >= 3 and parts[-3:-1] == ["tests", "mails"]:
                fh = tar.extractfile(member)
                if fh is not None:
                    out.append((parts[-1], fh.read()))
    if not out:
        raise CorpusUnavailable(f"no tests/mails/ in {os.path.basename(path)}")
    return sorted(out)


if __name__ == "__main__":
    mails = mail_parser_mails()
    # A command-line tool: its answer goes to stdout.
    print(  # pylint: disable=print-used
        f"{len(mails)} mails from mail-parser {MAIL_PARSER_VERSION} in {cache_dir()}"
    )
