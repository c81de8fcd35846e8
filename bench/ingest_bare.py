"""Baseline for bench/ingest.py: a bare grpcio TraceService that only deserializes each request.

``python ingest_bare.py PORT_FILE`` serves on an ephemeral loopback port, writes
the port to PORT_FILE, and runs until SIGTERM. It is the ceiling any Python
collector on grpcio can reach on this machine with this sender.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class _Bare(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method name
        return trace_service_pb2.ExportTraceServiceResponse()


def main(port_file: str) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_receive_message_length", 64 << 20)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Bare(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with open(port_file + ".tmp", "w", encoding="utf-8") as fh:
        fh.write(str(port))
    os.replace(port_file + ".tmp", port_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(5).wait(5)


if __name__ == "__main__":
    main(sys.argv[1])
