"""Encryption of stored mailbox secrets (passwords, OAuth tokens) with Fernet keys.

Keys come, in this order, from a comma-separated configuration value, from the environment
variable ``CRM_MAIL_SYNC_KEYS``, or from a key file created on first use with mode 0600. The first
key encrypts; every key decrypts (so a new key can be put in front of the old ones and tokens
re-encrypted with :meth:`SecretBox.rotate`). Nothing ever falls back to clear text.
"""

from __future__ import annotations

import os

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = ["SecretBox", "SecretKeyError", "load_keys", "generate_key", "ENV_VAR", "CONFIG_PARAM"]

ENV_VAR = "CRM_MAIL_SYNC_KEYS"
CONFIG_PARAM = "crm_mail_sync_keys"  # odoo.conf option / ir.config_parameter (caller's choice)
_UNSET = object()

_FIX = (
    f"Set the keys that encrypted the stored secrets again (comma-separated, newest first) "
    f"in the {CONFIG_PARAM} configuration option or the {ENV_VAR} environment variable, or "
    f"restore the key file; otherwise disconnect and reconnect the affected mailboxes."
)


class SecretKeyError(Exception):
    """The keys are missing, malformed, or do not decrypt a stored secret."""


def generate_key() -> bytes:
    return Fernet.generate_key()


def _as_key(key) -> bytes:
    if isinstance(key, str):
        key = key.strip().encode("ascii", "replace")
    key = bytes(key).strip()
    try:
        Fernet(key)
    except (ValueError, TypeError) as e:
        raise SecretKeyError(
            f"Invalid mail sync encryption key ({e}). A key is 32 url-safe base64-encoded "
            f"bytes, as made by Fernet.generate_key(). {_FIX}"
        ) from None
    return key


class SecretBox:
    """Encrypts with the first key, decrypts with any."""

    def __init__(self, keys):
        if isinstance(keys, (str, bytes)):
            keys = [k for k in (keys.split(b",") if isinstance(keys, bytes) else keys.split(","))]
        keys = [
            _as_key(k) for k in keys if k and (k.strip() if isinstance(k, (str, bytes)) else True)
        ]
        if not keys:
            raise SecretKeyError(f"No mail sync encryption key configured. {_FIX}")
        self._keys = keys
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def __repr__(self):
        return f"SecretBox(<{len(self._keys)} keys>)"

    def encrypt(self, plaintext: str) -> str:
        if not isinstance(plaintext, str):
            raise TypeError("SecretBox.encrypt takes a str")
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        if not token:
            raise SecretKeyError("No stored secret to decrypt.")
        try:
            data = self._fernet.decrypt(
                token.encode("ascii") if isinstance(token, str) else bytes(token)
            )
        except (InvalidToken, UnicodeError, TypeError, ValueError):
            raise SecretKeyError(
                f"A stored mail sync secret cannot be decrypted with the configured keys "
                f"(wrong or missing key). {_FIX}"
            ) from None
        return data.decode("utf-8")

    def rotate(self, token: str) -> str:
        """The same secret, re-encrypted with the first (newest) key."""
        try:
            return self._fernet.rotate(
                token.encode("ascii") if isinstance(token, str) else bytes(token)
            ).decode("ascii")
        except (InvalidToken, UnicodeError, TypeError, ValueError):
            raise SecretKeyError(
                f"A stored mail sync secret cannot be re-encrypted: none of the configured "
                f"keys decrypts it. {_FIX}"
            ) from None

    def is_encrypted(self, value: str) -> bool:
        """True when ``value`` decrypts with these keys."""
        try:
            self.decrypt(value)
            return True
        except SecretKeyError:
            return False


def _split(value) -> list[bytes]:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return [k.strip().encode("ascii", "replace") for k in str(value).split(",") if k.strip()]


def load_keys(config_value=None, env_value=_UNSET, key_file_path=None) -> list[bytes]:
    """The keys, newest first: from ``config_value`` (comma-separated), else ``env_value``
    (default: the ``CRM_MAIL_SYNC_KEYS`` environment variable), else from ``key_file_path``
    (one key per line; the file is created with a fresh key and mode 0600 on first use).
    Raises SecretKeyError when no key can be had or a key is malformed."""
    if env_value is _UNSET:
        env_value = os.environ.get(ENV_VAR)
    for source in (config_value, env_value):
        if source and str(source).strip(", \n"):
            return [_as_key(k) for k in _split(source)]
    if not key_file_path:
        raise SecretKeyError(f"No mail sync encryption key configured. {_FIX}")
    return [_as_key(k) for k in _read_or_create_key_file(key_file_path)]


def _read_or_create_key_file(path) -> list[bytes]:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(generate_key() + b"\n")
            f.flush()
            os.fsync(f.fileno())
    # Another process may have created the file a moment ago: wait for its content.
    import time

    for _ in range(50):
        with open(path, "rb") as f:
            content = f.read()
        keys = [
            line.strip()
            for line in content.replace(b",", b"\n").splitlines()
            if line.strip() and not line.strip().startswith(b"#")
        ]
        if keys:
            break
        time.sleep(0.02)
    else:
        raise SecretKeyError(f"The mail sync key file {path} is empty. {_FIX}")
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:
        try:
            os.chmod(path, 0o600)
        except OSError:
            pass
    return keys
