"""UploadBatch: small blobs in one unary call, under the same rules as an Upload stream.

Every blob is verified before any is stored, the caller's token decides the
project, and the uploader keeps streaming what one message cannot carry.
"""

from __future__ import annotations

import hashlib
import os
from typing import Iterator

import grpc
import pytest
from collector_helpers import Server, sql_rows, start_server

from tracetape import replay
from tracetape.instrumentation._blobs import BlobUploader
from tracetape.schemas._proto import blobs_pb2, blobs_pb2_grpc
from tracetape.schemas.errors import BlobError

MB = 1024 * 1024
A, B = "tok-a", "tok-b"


@pytest.fixture(scope="module")
def small_limit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A 2 MiB request limit: a larger blob only gets through as a stream of chunks."""
    yield from start_server(tmp_path_factory.mktemp("batch"), "--max-request-bytes", str(2 * MB))


def _chunk(data: bytes, digest: str | None = None, **fields: object) -> blobs_pb2.BlobChunk:
    return blobs_pb2.BlobChunk(sha256=digest or hashlib.sha256(data).hexdigest(), total_size=len(data), offset=0,
                               data=data, **fields)


def _batch(server: Server, chunks: list[blobs_pb2.BlobChunk], token: str | None = None) -> blobs_pb2.UploadResponse:
    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(server.grpc_target) as channel:
        return blobs_pb2_grpc.BlobServiceStub(channel).UploadBatch(blobs_pb2.BlobBatch(chunks=chunks),
                                                                   metadata=metadata, timeout=30)


def _missing(server: Server, digests: list[str], token: str | None = None) -> list[str]:
    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(server.grpc_target) as channel:
        return list(blobs_pb2_grpc.BlobServiceStub(channel).Missing(
            blobs_pb2.MissingRequest(sha256=digests), metadata=metadata, timeout=30).sha256)


def test_a_batch_of_small_blobs_is_stored_once_and_reads_back_verified(small_limit_server):
    blobs = [os.urandom(size) for size in (1, 700, 40_000)] + [b""]
    digests = [hashlib.sha256(data).hexdigest() for data in blobs]
    assert _missing(small_limit_server, digests) == digests
    for _ in range(2):  # a client retry sends the same batch again
        response = _batch(small_limit_server, [_chunk(data, content_type="application/json") for data in blobs])
        assert response.stored == len(blobs)
    assert _missing(small_limit_server, digests) == []
    with replay.open_store(small_limit_server.sql) as store:
        for digest, data in zip(digests, blobs):
            assert store.blob(digest) == data  # the reader checks the bytes against the hash
    rows = sql_rows(small_limit_server, "SELECT hash, count() FROM blobs FINAL WHERE hash IN {h:Array(String)} "
                    "GROUP BY hash ORDER BY hash", h="[" + ",".join(f"'{d}'" for d in digests) + "]")
    assert rows == [[digest, "1"] for digest in sorted(digests)]


def test_a_blob_in_chunks_within_a_batch_is_reassembled(small_limit_server):
    data = os.urandom(3000)
    digest = hashlib.sha256(data).hexdigest()
    chunks = [blobs_pb2.BlobChunk(sha256=digest, total_size=len(data), offset=offset, data=data[offset:offset + 1000])
              for offset in range(0, len(data), 1000)]
    assert _batch(small_limit_server, chunks).stored == 1
    with replay.open_store(small_limit_server.sql) as store:
        assert store.blob(digest) == data


def _wrong_digest(good: bytes) -> list[blobs_pb2.BlobChunk]:
    return [_chunk(good), _chunk(b"the real bytes", hashlib.sha256(b"other bytes").hexdigest())]


def _out_of_order(good: bytes) -> list[blobs_pb2.BlobChunk]:
    digest = hashlib.sha256(good * 2).hexdigest()
    return [blobs_pb2.BlobChunk(sha256=digest, total_size=2 * len(good), offset=len(good), data=good),
            blobs_pb2.BlobChunk(sha256=digest, total_size=2 * len(good), offset=0, data=good)]


def _over_the_size_limit(good: bytes) -> list[blobs_pb2.BlobChunk]:
    return [_chunk(good), blobs_pb2.BlobChunk(sha256="a" * 64, total_size=(1 << 30) + 1, offset=0, data=b"x")]


@pytest.mark.parametrize("bad_batch, reason", [(_wrong_digest, "do not match their sha256"),
                                               (_out_of_order, "expected 0"),
                                               (_over_the_size_limit, "exceeds the")])
def test_a_batch_with_a_bad_blob_is_refused_and_stores_none_of_it(small_limit_server, bad_batch, reason):
    good = os.urandom(500)
    digest = hashlib.sha256(good).hexdigest()
    with pytest.raises(grpc.RpcError) as refused:
        _batch(small_limit_server, bad_batch(good))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and reason in refused.value.details()
    assert _missing(small_limit_server, [digest]) == [digest]  # the good blob beside it was not kept either


def test_a_bad_blob_after_more_than_one_write_slice_still_stores_nothing(auth_server):
    good = [os.urandom(MB) for _ in range(17)]  # the collector writes in 16 MiB slices (64 MiB request limit)
    digests = [hashlib.sha256(data).hexdigest() for data in good]
    with pytest.raises(grpc.RpcError) as refused:
        _batch(auth_server, [_chunk(data) for data in good] + _wrong_digest(b"")[1:], token=A)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _missing(auth_server, digests, token=A) == digests


def test_a_batch_lands_in_the_project_of_its_token_only(auth_server):
    data = os.urandom(1000)
    digest = hashlib.sha256(data).hexdigest()
    with pytest.raises(grpc.RpcError) as refused:
        _batch(auth_server, [_chunk(data)])
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _batch(auth_server, [_chunk(data)], token=A).stored == 1
    assert _missing(auth_server, [digest], token=B) == [digest]  # beta does not hold it, nor learns alpha does
    assert _missing(auth_server, [digest], token=A) == []
    with replay.open_store(auth_server.sql, token=A, project="beta") as store:
        with pytest.raises(BlobError):
            store.blob(digest)
    with replay.open_store(auth_server.sql, token=A, project="alpha") as store:
        assert store.blob(digest) == data


def test_the_uploader_streams_what_one_message_cannot_carry(small_limit_server):
    large = os.urandom(5 * MB)  # over the collector's 2 MiB message limit: it can only arrive in chunks
    small = [os.urandom(2000) for _ in range(3)]
    uploader = BlobUploader(small_limit_server.grpc_target, secure=False)
    try:
        digests = [uploader.put(data) for data in (large, *small)]
        assert uploader.flush(timeout=60)
        more = [os.urandom(3000) for _ in range(2)]  # a small batch of its own
        digests += [uploader.put(data) for data in more]
        assert uploader.flush(timeout=60)
    finally:
        uploader.shutdown(timeout=10)
    stats = uploader.stats()
    assert (stats.uploaded, stats.dropped, stats.queued) == (6, 0, 0)
    with replay.open_store(small_limit_server.sql) as store:
        for digest, data in zip(digests, (large, *small, *more)):
            assert store.blob(digest) == data
