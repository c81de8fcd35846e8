"""TLS for every listener of the collector, from one PEM certificate and key.

gRPC and the HTTP listeners (OTLP/HTTP, health and metrics, the SQL endpoint)
share the same pair, so an operator configures TLS once. Files are read at
startup: a missing or mismatched key fails the start with a clear message
instead of the first handshake failing at a client.
"""

from __future__ import annotations

import socketserver
import ssl
from dataclasses import dataclass
from typing import Any

from tracetape.schemas.errors import ConfigError

__all__ = ["ServerTls", "load_tls"]


@dataclass(frozen=True)
class ServerTls:
    cert_pem: bytes
    key_pem: bytes
    context: ssl.SSLContext

    def wrap(self, server: socketserver.TCPServer) -> None:
        """Serve *server* over TLS. The handshake runs lazily in each connection's own thread
        (not in the accept loop), so one slow or hostile client cannot stall the listener."""
        server.socket = self.context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)

    def grpc_credentials(self) -> Any:
        import grpc

        return grpc.ssl_server_credentials([(self.key_pem, self.cert_pem)])


def load_tls(cert_path: str, key_path: str) -> ServerTls | None:
    """The TLS material for *cert_path*/*key_path*, or None when neither is set (plaintext)."""
    if not cert_path and not key_path:
        return None
    if not (cert_path and key_path):
        raise ConfigError("TLS needs both a certificate (--tls-cert) and its key (--tls-key)")
    try:
        with open(cert_path, "rb") as fh:
            cert = fh.read()
        with open(key_path, "rb") as fh:
            key = fh.read()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_path, key_path)
    except OSError as exc:
        raise ConfigError(f"cannot load TLS certificate {cert_path} / key {key_path}: {exc}") from exc
    except ssl.SSLError as exc:
        raise ConfigError(f"TLS certificate {cert_path} and key {key_path} do not form a usable pair: {exc}") from exc
    return ServerTls(cert, key, context)
