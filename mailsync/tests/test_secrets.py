"""SecretBox / load_keys: encryption of stored passwords and tokens."""

import os
import stat

import pytest
from cryptography.fernet import Fernet

from mailsync.secrets import ENV_VAR, SecretBox, SecretKeyError, generate_key, load_keys


def test_roundtrip_and_never_clear_text():
    box = SecretBox([generate_key()])
    token = box.encrypt("p@ssw0rd-é")
    assert "p@ssw0rd" not in token and isinstance(token, str)
    assert box.decrypt(token) == "p@ssw0rd-é"
    assert box.encrypt("x") != box.encrypt("x")  # random IV
    with pytest.raises(SecretKeyError):
        box.decrypt("p@ssw0rd-é")  # a clear-text value is never returned as is
    with pytest.raises(SecretKeyError):
        box.decrypt("")
    with pytest.raises(TypeError):
        box.encrypt(None)


def test_wrong_key_raises_a_clear_error_naming_the_fix():
    token = SecretBox([generate_key()]).encrypt("hunter22")
    with pytest.raises(SecretKeyError) as info:
        SecretBox([generate_key()]).decrypt(token)
    assert ENV_VAR in str(info.value) and "reconnect" in str(info.value)
    assert "hunter22" not in str(info.value) and token not in str(info.value)


def test_rotation_keeps_old_tokens_readable():
    old, new = generate_key(), generate_key()
    token = SecretBox([old]).encrypt("tok")
    box = SecretBox([new, old])
    assert box.decrypt(token) == "tok"
    rotated = box.rotate(token)
    assert SecretBox([new]).decrypt(rotated) == "tok"
    with pytest.raises(SecretKeyError):
        SecretBox([old]).decrypt(rotated)
    with pytest.raises(SecretKeyError):
        SecretBox([generate_key()]).rotate(token)


def test_bad_or_missing_keys():
    with pytest.raises(SecretKeyError):
        SecretBox([])
    with pytest.raises(SecretKeyError) as info:
        SecretBox(["not-a-key"])
    assert "generate_key" in str(info.value)
    assert SecretBox(generate_key().decode() + "," + generate_key().decode())


def test_load_keys_order(tmp_path):
    k1, k2, k3 = (generate_key() for _ in range(3))
    path = tmp_path / "keys"
    assert load_keys(f"{k1.decode()}, {k2.decode()}", k3.decode(), path) == [k1, k2]
    assert load_keys(None, k3.decode(), path) == [k3]
    assert load_keys("", f" {k3.decode()} ,", path) == [k3]
    assert not path.exists()
    with pytest.raises(SecretKeyError):
        load_keys(None, None, None)
    with pytest.raises(SecretKeyError):
        load_keys("garbage", None, path)


def test_load_keys_reads_the_environment(monkeypatch, tmp_path):
    k = generate_key()
    monkeypatch.setenv(ENV_VAR, k.decode())
    assert load_keys(None, key_file_path=tmp_path / "f") == [k]


def test_key_file_created_once_with_mode_0600(tmp_path):
    path = tmp_path / "sub" / "mail_sync.key"
    keys = load_keys(None, None, path)
    assert len(keys) == 1 and Fernet(keys[0])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_keys(None, None, path) == keys  # same key next time
    os.chmod(path, 0o644)
    assert load_keys(None, None, path) == keys
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    box = SecretBox(keys)
    assert SecretBox(load_keys(None, None, path)).decrypt(box.encrypt("pw")) == "pw"
