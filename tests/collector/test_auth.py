"""Bearer tokens mapped to projects, for gRPC ingest, OTLP/HTTP ingest and SQL reads.

The collector runs with ``tok-a → alpha`` and ``tok-b → beta``. Beyond the
no/wrong/right token matrix, a token must confine its holder to its project:
what it writes lands in its project whatever the spans claim, and no query,
however crafted, returns another project's rows.
"""

from __future__ import annotations

import hashlib
import os
import uuid

import grpc
import pytest
from collector_helpers import request, span_request, sql_rows
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from tracetape import replay
from tracetape.schemas._proto import blobs_pb2, blobs_pb2_grpc
from tracetape.schemas.errors import BlobError, RunNotFound

A, B = "tok-a", "tok-b"
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _grpc_export(server, req, token: str | None) -> grpc.StatusCode:
    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(server.grpc_target) as channel:
        try:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(req, metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def _http_export(server, req, token: str | None) -> int:
    headers = {**PROTOBUF, **({"Authorization": f"Bearer {token}"} if token else {})}
    return request("POST", f"{server.http}/v1/traces", req.SerializeToString(), headers).status


def _sql_status(server, query: str, token: str | None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = request("POST", f"{server.sql}/?database=tracetape", query.encode(), headers)
    return resp.status, resp.body


@pytest.fixture(scope="module")
def seeded(auth_server):
    """One run per project, written with each project's own token."""
    runs = {}
    for token, project in ((A, "alpha"), (B, "beta")):
        run_id = f"run-{project}-{uuid.uuid4().hex[:8]}"
        assert _grpc_export(auth_server, span_request(f"{project}-secret-span", run_id=run_id), token) \
            == grpc.StatusCode.OK
        runs[project] = run_id
    return runs


@pytest.mark.parametrize("token, grpc_code, http_status", [
    (None, grpc.StatusCode.UNAUTHENTICATED, 401),
    ("tok-wrong", grpc.StatusCode.UNAUTHENTICATED, 401),
    (A, grpc.StatusCode.OK, 200),
])
def test_ingest_needs_a_known_token(auth_server, token, grpc_code, http_status):
    name = f"matrix-{token}-{uuid.uuid4().hex[:6]}"
    assert _grpc_export(auth_server, span_request(name + "-grpc"), token) == grpc_code
    assert _http_export(auth_server, span_request(name + "-http"), token) == http_status
    stored = sql_rows(auth_server, "SELECT count() FROM spans WHERE startsWith(name, {n:String})", A, n=name)
    assert stored == [["2" if token == A else "0"]]


def test_http_401_names_the_scheme(auth_server):
    resp = request("POST", f"{auth_server.http}/v1/traces", span_request("x").SerializeToString(), PROTOBUF)
    assert resp.status == 401 and resp.headers["www-authenticate"].startswith("Bearer")


def test_blob_service_needs_a_token(auth_server):
    with grpc.insecure_channel(auth_server.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as info:
            blobs_pb2_grpc.BlobServiceStub(channel).Missing(blobs_pb2.MissingRequest(sha256=["0" * 64]), timeout=30)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("token, status", [(None, 401), ("tok-wrong", 403), (A, 200)])
def test_sql_needs_a_known_token(auth_server, token, status):
    assert _sql_status(auth_server, "SELECT 1", token)[0] == status


def test_a_token_writes_only_into_its_own_project(auth_server):
    """Spans sent with alpha's token that claim beta (span or resource attribute) are stored in alpha."""
    run_id = f"run-claims-beta-{uuid.uuid4().hex[:8]}"
    req = span_request("claims-beta", project="beta", run_id=run_id)
    req.resource_spans[0].resource.attributes.add(key="tracetape.project").value.string_value = "beta"
    assert _grpc_export(auth_server, req, A) == grpc.StatusCode.OK
    req = span_request("claims-beta-http", project="beta", run_id=run_id)
    assert _http_export(auth_server, req, A) == 200
    assert sql_rows(auth_server, "SELECT name FROM spans WHERE run_id = {r:String} ORDER BY name", A, r=run_id) \
        == [["claims-beta"], ["claims-beta-http"]]
    assert sql_rows(auth_server, "SELECT count() FROM spans WHERE run_id = {r:String}", B, r=run_id) == [["0"]]


def test_readers_see_only_their_project(auth_server, seeded):
    assert sql_rows(auth_server, "SELECT DISTINCT project FROM spans", A) == [["alpha"]]
    assert sql_rows(auth_server, "SELECT DISTINCT project FROM spans", B) == [["beta"]]
    with replay.open_store(auth_server.sql, token=A, project="alpha") as store:
        assert store.resolve_run(seeded["alpha"]) == seeded["alpha"]
        with pytest.raises(RunNotFound):
            store.resolve_run(seeded["beta"])
    # Claiming beta as the project to read does not help alpha's token.
    with replay.open_store(auth_server.sql, token=A, project="beta") as store:
        with pytest.raises(RunNotFound):
            store.resolve_run(seeded["beta"])


def test_blobs_are_per_project(auth_server):
    data = os.urandom(1000)
    digest = hashlib.sha256(data).hexdigest()
    chunk = blobs_pb2.BlobChunk(sha256=digest, total_size=len(data), offset=0, data=data)
    with grpc.insecure_channel(auth_server.grpc_target) as channel:
        stub = blobs_pb2_grpc.BlobServiceStub(channel)
        stub.Upload(iter([chunk]), metadata=[("authorization", f"Bearer {B}")], timeout=30)
        missing_for_a = stub.Missing(blobs_pb2.MissingRequest(sha256=[digest]),
                                     metadata=[("authorization", f"Bearer {A}")], timeout=30)
    assert list(missing_for_a.sha256) == [digest]  # alpha cannot even learn that beta holds it
    with replay.open_store(auth_server.sql, token=B, project="beta") as store:
        assert store.blob(digest) == data
    with replay.open_store(auth_server.sql, token=A, project="beta") as store:
        with pytest.raises(BlobError):
            store.blob(digest)


# Crafted reads with alpha's token. Each is refused (status, ClickHouse error name) or answers with
# alpha's rows only; in no case does beta's secret appear.
CRAFTED = [
    ("SELECT name FROM spans WHERE project = 'beta'", 200, ""),
    ("SELECT name FROM tracetape.spans FINAL WHERE project != 'alpha'", 200, ""),
    ("WITH s AS (SELECT name, project FROM spans) SELECT name FROM s WHERE project = 'beta'", 200, ""),
    ("SELECT name FROM spans WHERE (project, name) IN (SELECT project, name FROM tracetape.spans)"
     " AND project = 'beta'", 200, ""),
    ("SELECT (SELECT groupArray(name) FROM spans WHERE project = 'beta')", 200, "[]"),
    ("SELECT name FROM spans AS a JOIN runs AS b ON a.project = b.project WHERE b.project = 'beta'", 200, ""),
    ("SELECT name FROM merge('tracetape', '^spans$')", 403, "ACCESS_DENIED"),
    ("SELECT (SELECT groupArray(name) FROM merge('tracetape', 'spans'))", 403, "ACCESS_DENIED"),
    ("SELECT * FROM mergeTreeIndex('tracetape', 'spans')", 403, "ACCESS_DENIED"),
    ("SELECT name FROM spans WHERE project IN (SELECT project FROM mergeTreeIndex('tracetape', 'spans'))",
     403, "ACCESS_DENIED"),
    ("SELECT query FROM system.processes", 403, "ACCESS_DENIED"),
    ("SELECT count() FROM system.parts", 403, "ACCESS_DENIED"),
    ("SELECT file('/etc/hostname')", 403, "ACCESS_DENIED"),
    ("SELECT 1; SELECT name FROM merge('tracetape', 'spans')", 400, "SYNTAX_ERROR"),
    ("SELECT name FROM spans SETTINGS additional_table_filters = {}", 500, "READONLY"),
    ("SET additional_table_filters = {}", 500, "READONLY"),
    ("SELECT name FROM spans INTO OUTFILE 'leak.tsv'", 500, "READONLY"),
    ("KILL QUERY WHERE 1", 500, "READONLY"),
    ("INSERT INTO spans (project, name) VALUES ('beta', 'forged')", 500, "READONLY"),
    ("SHOW PROCESSLIST", 500, "READONLY"),
]


@pytest.mark.parametrize("query, status, expect", CRAFTED)
def test_crafted_queries_cannot_reach_another_project(auth_server, seeded, query, status, expect):
    got_status, body = _sql_status(auth_server, query, A)
    assert b"beta-secret" not in body
    assert got_status == status, body[:300]
    if status == 200:
        assert body.decode().strip() == expect
    else:
        assert f"({expect})".encode() in body


def test_alpha_still_reads_its_own_rows_with_ordinary_sql(auth_server, seeded):
    rows = sql_rows(auth_server, "WITH r AS (SELECT run_id FROM spans WHERE name = {n:String}) "
                                 "SELECT s.name, count() FROM spans AS s WHERE s.run_id IN r GROUP BY s.name",
                    A, n="alpha-secret-span")
    assert rows == [["alpha-secret-span", "1"]]
    tables = sql_rows(auth_server, "SELECT name FROM system.tables WHERE database = 'tracetape' ORDER BY name", A)
    assert ["spans"] in tables
