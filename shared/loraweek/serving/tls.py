"""TLS on localhost: a private certificate authority and a server certificate signed by it.

    files = make_local_ca("runs/day5/tls")            # ca.pem, server.pem, server-key.pem
    python -m loraweek.serving ... --ssl-certfile files.cert --ssl-keyfile files.key
    httpx.get("https://127.0.0.1:PORT/health", verify=files.client_context())

A client trusts the server because the server's certificate (its name: localhost, 127.0.0.1)
is signed by a CA the client was told to trust (ca.pem).  The CA's private key is used once
and never written anywhere, so this CA can sign nothing else; the server's private key is
written readable by its owner only.  In production the certificate comes from a public CA
(Let's Encrypt, the cloud's certificate manager) or a company CA, usually on a load balancer
or reverse proxy in front of the server.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TLSFiles:
    ca_cert: Path      # what clients trust
    cert: Path         # the server's certificate (uvicorn --ssl-certfile)
    key: Path          # the server's private key (uvicorn --ssl-keyfile), mode 0600

    def client_context(self) -> ssl.SSLContext:
        """Verifies the server against this CA only (and checks the host name), as a client should."""
        return ssl.create_default_context(cafile=str(self.ca_cert))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "loraweek course"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_local_ca(folder: str | Path, hosts=("localhost", "127.0.0.1"), days: int = 7) -> TLSFiles:
    """A fresh CA and a server certificate for `hosts`, valid for `days` days (ECDSA P-256, SHA-256)."""
    if not hosts:
        raise ValueError("hosts: expected at least one DNS name or IP address for the server certificate")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)   # a little clock skew is fine

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(_name("loraweek local CA")).issuer_name(_name("loraweek local CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))

    files = TLSFiles(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_private_key(key, files.key)
    return files


def write_private_key(key, path: str | Path) -> Path:
    """PEM (PKCS#8, unencrypted), readable by its owner only: whoever reads a key can impersonate its owner."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)   # O_CREAT's mode does not apply to a file that already existed
    return path
