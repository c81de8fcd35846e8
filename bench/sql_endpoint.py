"""SQL endpoint benchmark: latency of one small query over a keep-alive connection.

    python bench/sql_endpoint.py [--queries 200]

A stock clickhouse-connect client queries the collector's read-only SQL endpoint
(``collector/sql_http.py``) over an embedded store. Each response leaves the
server as two writes (headers, body); the listener sets TCP_NODELAY so that the
second does not wait for the client's delayed ACK under Nagle's algorithm. The
baseline is the same server with Nagle left on, measured in the same run; the
figure is the median per-query latency, and the ratio is baseline / figure.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from typing import Any

import chdb
import clickhouse_connect

from tracetape.collector import sql_http

QUERIES = {"SELECT 1 (command)": "SELECT 1", "10 rows (query)": "SELECT number FROM numbers(10)"}


class _NagleHandler(sql_http._Handler):
    """The baseline: the endpoint's handler with TCP_NODELAY switched back off."""

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)


def _medians(path: str, queries: int, handler: Any) -> dict[str, float]:
    shipped, sql_http._Handler = sql_http._Handler, handler
    server = sql_http.SqlHttpServer(path)
    try:
        server.start()
    finally:
        sql_http._Handler = shipped
    client = clickhouse_connect.get_client(host="127.0.0.1", port=server.port)
    try:
        result = {}
        for label, sql in QUERIES.items():
            run = client.command if label.endswith("(command)") else client.query
            run(sql)  # warm the connection
            times = []
            for _ in range(queries):
                started = time.perf_counter()
                run(sql)
                times.append(time.perf_counter() - started)
            result[label] = statistics.median(times)
        return result
    finally:
        client.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    path = tempfile.mkdtemp(prefix="tracetape-bench-sql-")
    chdb.connect(path).close()
    baseline = _medians(path, args.queries, _NagleHandler)
    figure = _medians(path, args.queries, sql_http._Handler)
    for label in QUERIES:
        print(f"{label}: {figure[label] * 1000:.1f} ms per query with TCP_NODELAY; baseline (Nagle on) "
              f"{baseline[label] * 1000:.1f} ms; ratio {baseline[label] / figure[label]:.1f}x")


if __name__ == "__main__":
    main()
