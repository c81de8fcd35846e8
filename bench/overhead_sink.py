"""A BlobService that accepts every payload and keeps none, for bench/overhead.py.

The counterpart of the span exporter that drops spans: tracetape's payload
path runs for real in the measured process (hashing, queueing, the upload
worker's gRPC calls, every payload sent since none is ever "already stored"),
while storing them, which a collector does in its own process and usually on
another machine, stays off this 2-core box. Prints ``host:port``, then serves
until stdin closes.
"""

from __future__ import annotations

import sys
from concurrent import futures
from typing import Any, Iterator

import grpc

from tracetape.schemas._proto import blobs_pb2, blobs_pb2_grpc


class DiscardingBlobs(blobs_pb2_grpc.BlobServiceServicer):
    def Missing(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC method name
        return blobs_pb2.MissingResponse(sha256=list(request.sha256))

    def Upload(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:  # noqa: N802
        blobs = {chunk.sha256 for chunk in request_iterator}
        return blobs_pb2.UploadResponse(stored=len(blobs))

    def UploadBatch(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self.Upload(iter(request.chunks), context)


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    blobs_pb2_grpc.add_BlobServiceServicer_to_server(DiscardingBlobs(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"127.0.0.1:{port}", flush=True)
    sys.stdin.read()
    server.stop(grace=1).wait()


if __name__ == "__main__":
    main()
