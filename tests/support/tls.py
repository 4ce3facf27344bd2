"""A throwaway CA and the certificates it signs, made with `cryptography`, for the TLS tests."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from datapilot_runtime.settings import GrpcTransportSettings
from devstack.processes import ManagedProcess, free_port, wait_tcp
from tests.support.servers import RunningServer


@dataclass(frozen=True)
class CertFiles:
    """PEM files in the cert-manager Secret layout: tls.crt, tls.key, ca.crt."""

    cert: Path
    key: Path
    ca: Path

    def transport(self) -> GrpcTransportSettings:
        """A client's or server's settings with this certificate, verifying with the CA."""
        return GrpcTransportSettings(
            grpc_tls_cert_file=str(self.cert),
            grpc_tls_key_file=str(self.key),
            grpc_tls_ca_file=str(self.ca),
        )

    def grpc_env(self) -> dict[str, str]:
        return {
            "GRPC_TLS_CERT_FILE": str(self.cert),
            "GRPC_TLS_KEY_FILE": str(self.key),
            "GRPC_TLS_CA_FILE": str(self.ca),
        }


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class ThrowawayCa:
    """A CA whose certificates name localhost and 127.0.0.1 (server and client use)."""

    def __init__(self, directory: Path, common_name: str = "datapilot test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.crt"
        self.ca_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str) -> CertFiles:
        """A key and certificate for `name` (and localhost, 127.0.0.1), in `directory/name/`."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName(name),
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        folder = self.directory / name
        folder.mkdir(parents=True, exist_ok=True)
        files = CertFiles(folder / "tls.crt", folder / "tls.key", self.ca_file)
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files.key.write_bytes(_pem_key(key))
        files.key.chmod(0o600)
        return files


def start_tls_redis(ca: ThrowawayCa, run_dir: Path) -> RunningServer:
    """A redis-server that speaks TLS only (no plaintext port); its url is rediss://."""
    files = ca.issue("redis")
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"]
    argv += ["--tls-cert-file", str(files.cert), "--tls-key-file", str(files.key)]
    argv += ["--tls-ca-cert-file", str(files.ca), "--tls-auth-clients", "no"]
    argv += ["--save", "", "--dir", str(run_dir)]
    process = ManagedProcess(
        "redis-tls", argv, {"PATH": "/usr/bin:/bin:/usr/local/bin"}, run_dir / "redis.log"
    )
    process.start()
    try:
        wait_tcp("127.0.0.1", port, 30, process)
    except BaseException:
        process.stop()
        raise
    return RunningServer(process, f"rediss://127.0.0.1:{port}/0", port)
