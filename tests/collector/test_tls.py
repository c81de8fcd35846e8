"""TLS on every listener once a certificate and key are configured (here through a TOML config file)."""

from __future__ import annotations

import ssl

import clickhouse_connect
import grpc
import pytest
from collector_helpers import request, span_request, sql_rows, start_server
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TOKEN = "tls-token"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, tls_files):
    cert, key = tls_files
    config = tmp_path_factory.mktemp("tls-config") / "collector.toml"
    config.write_text(f'[collector]\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
                      f'tokens = {{ "{TOKEN}" = "secure" }}\n', encoding="utf-8")
    yield from start_server(tmp_path_factory.mktemp("tls"), "--config", str(config))


def _spans(service: str) -> list:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("test").start_as_current_span(f"span of {service}"):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_collector_advertises_https_endpoints(tls_server):
    assert all(tls_server.state[k].startswith("https://") for k in ("grpc", "http", "sql"))
    assert tls_server.state["tls"] is True


def test_official_grpc_and_http_exporters_over_tls(tls_server, tls_files, monkeypatch):
    # requests lets these variables override a session's own CA file (psf/requests#3829).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    cert = tls_files[0]
    grpc_exporter = GrpcExporter(endpoint=tls_server.grpc, headers={"authorization": f"Bearer {TOKEN}"},
                                 credentials=grpc.ssl_channel_credentials(cert.read_bytes()))
    http_exporter = HttpExporter(endpoint=f"{tls_server.http}/v1/traces", certificate_file=str(cert),
                                 headers={"authorization": f"Bearer {TOKEN}"})
    try:
        assert grpc_exporter.export(_spans("tls-grpc")) == SpanExportResult.SUCCESS
        assert http_exporter.export(_spans("tls-http")) == SpanExportResult.SUCCESS
    finally:
        grpc_exporter.shutdown()
        http_exporter.shutdown()
    rows = sql_rows(tls_server, "SELECT service_name, project FROM spans ORDER BY service_name", TOKEN,
                    cafile=cert)
    assert rows == [["tls-grpc", "secure"], ["tls-http", "secure"]]


def test_sql_endpoint_over_tls_with_clickhouse_connect(tls_server, tls_files):
    port = int(tls_server.sql.rsplit(":", 1)[1])
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port, secure=True, ca_cert=str(tls_files[0]),
                                           username="reader", password=TOKEN, database="tracetape")
    try:
        assert client.command("SELECT 1 + 1") == 2
    finally:
        client.close()


def test_plaintext_clients_are_refused(tls_server):
    with grpc.insecure_channel(tls_server.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as info:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                span_request("plain"), metadata=[("authorization", f"Bearer {TOKEN}")], timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises((ConnectionError, OSError)):
        request("GET", tls_server.http.replace("https://", "http://") + "/healthz", timeout=5)


def test_an_untrusted_certificate_is_refused_by_clients(tls_server):
    with pytest.raises(ssl.SSLCertVerificationError):
        request("GET", f"{tls_server.http}/healthz", timeout=5)  # system roots do not include our test CA
