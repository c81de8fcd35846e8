"""An agent that talks to a local HTTP API with httpx2, httpx and requests.

Usage: ``tools_http_agent.py BASE_URL REFUSED_URL [--replay RUN_ID --store SQL_URL]``. Sync, async,
streamed, redirected, gzip and chunked responses, a generator upload, a 404 and a refused connection.
With ``--replay`` the same calls run under a strict replay of RUN_ID (the API is gone by then).
Prints one JSON line: the run id, what each call returned, and how many calls were served.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import httpx2
import requests
from tools_replaying import options, recording

import tracetape


def calls(base: str, refused: str) -> list:
    out: list = []
    with httpx2.Client() as client:
        reply = client.get(f"{base}/items?api_key=SECRET-KEY-1&q=1", headers={"Authorization": "Bearer tok-xyz"})
        out.append(["httpx2 get", reply.status_code, reply.json()])
    with httpx.Client() as client:
        reply = client.post(f"{base}/echo", json={"city": "Paris", "n": 1})
        out.append(["httpx post", reply.status_code, reply.json()])
        reply = client.get(f"{base}/redirect", follow_redirects=True)
        out.append(["httpx redirect", reply.status_code, reply.json(), len(reply.history)])
        out.append(["httpx gzip", client.get(f"{base}/gzip").json()])
        with client.stream("GET", f"{base}/chunked") as streamed:
            out.append(["httpx stream", b"".join(streamed.iter_bytes()).decode()])
        missing = client.get(f"{base}/missing")
        out.append(["httpx 404", missing.status_code, missing.text])

    async def fetch() -> dict:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{base}/async")).json()

    out.append(["httpx async", asyncio.run(fetch())])
    with requests.Session() as session:
        out.append(["requests get", session.get(f"{base}/items?token=abc-secret").json()])
        out.append(["requests upload", session.post(f"{base}/echo", data=iter([b"part-1,", b"part-2"])).json()])
        with session.get(f"{base}/chunked", stream=True) as streamed:
            out.append(["requests stream", b"".join(streamed.iter_content(3)).decode()])
        out.append(["requests gzip", session.get(f"{base}/gzip").json()])
    try:
        httpx.get(refused)
    except httpx.ConnectError as exc:
        out.append(["httpx refused", type(exc).__name__])
    try:
        requests.get(refused, timeout=5)
    except requests.ConnectionError as exc:
        out.append(["requests refused", type(exc).__name__])
    return out


def main() -> None:
    args = options("base", "refused")
    tracetape.instrument()
    with recording("http-agent", args.replay, args.store) as outcome:
        outcome["results"] = calls(args.base, args.refused)
    tracetape.flush()
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
