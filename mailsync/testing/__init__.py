"""Loopback test servers for the engine's and the addon's tests.

- :mod:`.dovecot`: a private Dovecot IMAP server (plain + STARTTLS port, implicit-TLS port,
  passwords and, optionally, XOAUTH2/OAUTHBEARER against an introspection URL).
- :mod:`.smtp_server`: an aiosmtpd SMTP server (AUTH PLAIN/LOGIN/XOAUTH2, optional STARTTLS)
  that spools every received message to disk.

``shared_dovecot()`` / ``shared_smtp()`` return one instance per process: they attach to the
servers started by ``tools/test.sh`` (env ``MAILSYNC_DOVECOT`` / ``MAILSYNC_SMTP``) or start
their own. Nothing here imports ``odoo``; only relative imports inside the package.
"""

import contextlib
import datetime as _dt
import os
import socket

LOOPBACK = "127.0.0.1"


def free_port(host=LOOPBACK):
    """A TCP port that was free a moment ago (the caller binds it right away)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def closed_port(host=LOOPBACK):
    """A loopback port nobody listens on: a connection to it is refused (a stopped server)."""
    return free_port(host)


def wait_for_port(host, port, timeout=10.0, alive=None):
    """Wait until ``host:port`` accepts a connection; ``alive()`` False aborts early."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            pass
        if alive is not None and not alive():
            return False
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def self_signed_cert(directory, name="mailsync-test"):
    """Write ``cert.pem`` and ``key.pem`` (EC P-256, valid for 127.0.0.1 and localhost).

    The certificate is its own CA: pass ``cert.pem`` as ``cafile`` to a client.
    Returns ``(cert_path, key_path)``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    os.makedirs(directory, exist_ok=True)
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path
