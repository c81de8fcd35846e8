"""Ingest throughput: spans/s persisted and readable, collector peak RSS, and two ceilings.

    python bench/ingest.py              # 1,000,000 spans
    python bench/ingest.py --quick      # 100,000 spans, for development

A collector (``python -m tracetape collector``, its own process, embedded chDB in
a temporary directory) receives realistic agent traces
(bench/ingest_traces.py) from a separate sender process with several
concurrent exporters. The figure is spans acknowledged and counted in the
store, divided by the time from the first send to the last span being
readable. Measured in the same run:

* a bare grpcio TraceService that only deserializes the same requests
  (the ceiling for any Python gRPC receiver with this sender on this machine);
* chDB's own ``INSERT … SELECT`` of the very rows the collector wrote
  (the ceiling for writing them at all).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        if path.exists():
            return path.read_text(encoding="utf-8")
        time.sleep(0.05)
    raise TimeoutError(f"{process.args} did not start")


def _proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


class _PeakMemory:
    """Samples the collector's resident memory while it runs: VmHWM gives the peak, not what made it up."""

    def __init__(self, pid: int) -> None:
        self.anon = self.file = 0
        self._pid = pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):  # bounded by stop(), called when the load is done
            try:
                anon, file = _proc_status(self._pid, "RssAnon"), _proc_status(self._pid, "RssFile")
            except OSError:
                return
            self.anon, self.file = max(self.anon, anon), max(self.file, file)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _send(endpoint: str, spans: int, senders: int) -> dict:
    done = subprocess.run([sys.executable, str(HERE / "ingest_sender.py"), endpoint, str(spans), str(senders)],
                          capture_output=True, text=True, check=True, cwd=HERE)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def bare_grpc(spans: int, senders: int, work: Path) -> float:
    port_file = work / "bare.port"
    server = subprocess.Popen([sys.executable, str(HERE / "ingest_bare.py"), str(port_file)])
    try:
        port = _wait_for(port_file, server)
        result = _send(f"http://127.0.0.1:{port}", spans, senders)
    finally:
        _stop(server)
    return result["acked"] / result["seconds"]


def collector_run(spans: int, senders: int, work: Path) -> dict:
    import clickhouse_connect

    data = work / "collector"
    data.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "tracetape", "collector", "--data-dir", str(data),
                               "--grpc-listen", "127.0.0.1:0", "--sql-listen", "127.0.0.1:0"], stdout=subprocess.DEVNULL)
    try:
        state = json.loads(_wait_for(data / "collector.json", server))
        client = clickhouse_connect.get_client(host="127.0.0.1", port=int(state["sql"].rsplit(":", 1)[1]),
                                               database="tracetape")
        idle_rss = _proc_status(server.pid, "VmRSS")
        cpu_before = _cpu_seconds(server.pid)
        memory = _PeakMemory(server.pid)
        started = time.perf_counter()
        result = _send(state["grpc"], spans, senders)
        stored = 0
        for _ in range(600):  # acknowledged means stored, so this normally passes at once
            stored = int(client.command("SELECT count() FROM spans"))
            if stored >= result["acked"]:
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds(server.pid) - cpu_before
        memory.stop()
        distinct = int(client.command("SELECT count() FROM spans FINAL"))
        runs = int(client.command("SELECT count() FROM runs FINAL"))
        client.close()
        rss = _proc_status(server.pid, "VmHWM")
    finally:
        _stop(server)
    return {"acked": result["acked"], "stored": stored, "distinct": distinct, "runs": runs, "seconds": elapsed,
            "retries": result["retries"], "rss": rss, "idle_rss": idle_rss,
            "peak_anon": memory.anon, "peak_file": memory.file, "cpu": cpu, "store": str(data / "store")}


def insert_select(store: str) -> float:
    """chDB writing the collector's own rows again: INSERT … SELECT into a twin table."""
    import chdb

    conn = chdb.connect(store)
    try:
        conn.query("CREATE TABLE tracetape.spans_twin AS tracetape.spans")
        rows = int(conn.query("SELECT count() FROM tracetape.spans", "CSV").bytes().strip())
        started = time.perf_counter()
        conn.query("INSERT INTO tracetape.spans_twin SELECT * FROM tracetape.spans "
                   "SETTINGS max_threads = 2, max_insert_threads = 2")
        elapsed = time.perf_counter() - started
        conn.query("DROP TABLE tracetape.spans_twin SYNC")
    finally:
        conn.close()
    return rows / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 spans")
    parser.add_argument("--senders", type=int, default=4, help="concurrent exporters")
    args = parser.parse_args()
    spans = 100_000 if args.quick else args.spans
    work = Path(tempfile.mkdtemp(prefix="tracetape-bench-ingest-"))
    try:
        print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores", flush=True)
        bare = bare_grpc(min(spans, 300_000), args.senders, work)
        print(f"bare grpcio deserialize: {bare:,.0f} spans/s", flush=True)
        run = collector_run(spans, args.senders, work)
        rate = run["acked"] / run["seconds"]
        print(f"collector: {run['acked']:,} spans acknowledged, {run['stored']:,} rows readable "
              f"({run['distinct']:,} distinct, {run['runs']:,} runs) in {run['seconds']:.1f}s "
              f"= {rate:,.0f} spans/s; {run['retries']} backoffs; collector CPU {run['cpu'] / run['acked'] * 1e6:.1f} "
              f"µs/span; peak RSS {run['rss'] / 2**20:,.0f} MB (idle before the load: {run['idle_rss'] / 2**20:,.0f} MB; "
              f"sampled peaks: {run['peak_anon'] / 2**20:,.0f} MB anonymous, {run['peak_file'] / 2**20:,.0f} MB "
              "mapped files, mostly chDB's code)",
              flush=True)
        engine = insert_select(run["store"])
        print(f"chDB INSERT … SELECT of the same rows: {engine:,.0f} rows/s", flush=True)
        print(f"ratios: collector / bare grpcio = {rate / bare:.2f}; collector / chDB INSERT…SELECT = "
              f"{rate / engine:.2f}")
        ok = run["stored"] == run["acked"] == run["distinct"]
        print("check: every acknowledged span is readable exactly once" if ok else
              "CHECK FAILED: acknowledged, readable and distinct counts differ")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
