"""Load generator for bench/ingest.py: concurrent OTLP/gRPC exporters in one process.

``python ingest_sender.py ENDPOINT SPANS SENDERS`` sends SPANS spans of fresh
agent runs (ingest_traces.py) over SENDERS channels at once, each waiting for
its export to be acknowledged before sending the next, as the OTLP exporter
does. A refused export (RESOURCE_EXHAUSTED / UNAVAILABLE) is resent after the
server's RetryInfo delay. Prints one JSON line: spans acknowledged, seconds,
retries.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import grpc
from google.rpc import error_details_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from ingest_traces import SPANS_PER_RUN, RunTemplate, encode_request

RUNS_PER_REQUEST = 10  # 500 spans: the OTel BatchSpanProcessor exports up to 512
_RETRYABLE = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
_MAX_ATTEMPTS = 100


def _retry_delay(error: grpc.RpcError) -> float:
    for key, value in error.trailing_metadata() or ():
        if key == "google.rpc.retryinfo-bin":
            delay = error_details_pb2.RetryInfo.FromString(value).retry_delay
            return delay.seconds + delay.nanos / 1e9
    return 1.0


def _send(target: str, requests: int, acked: list[int], retries: list[int]) -> None:
    template = RunTemplate()
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                     request_serializer=None,
                                     response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)
        for _ in range(requests):
            request = encode_request([template.spans_bytes()[1] for _ in range(RUNS_PER_REQUEST)])
            for _attempt in range(_MAX_ATTEMPTS):
                try:
                    export(request, timeout=120)
                except grpc.RpcError as error:
                    if error.code() not in _RETRYABLE:
                        raise
                    retries.append(1)
                    time.sleep(_retry_delay(error))
                    continue
                acked.append(RUNS_PER_REQUEST * SPANS_PER_RUN)
                break


def main(endpoint: str, spans: int, senders: int) -> None:
    target = endpoint.split("://", 1)[-1]
    per_request = RUNS_PER_REQUEST * SPANS_PER_RUN
    requests = -(-spans // per_request)
    acked: list[int] = []
    retries: list[int] = []
    threads = [threading.Thread(target=_send, args=(target, requests // senders + (i < requests % senders),
                                                    acked, retries)) for i in range(senders)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"acked": sum(acked), "seconds": time.perf_counter() - started, "retries": len(retries)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
