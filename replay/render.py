"""Human-readable and JSON renderings of a trajectory (used by ``tracetape show``)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from tracetape.schemas import attributes as A
from tracetape.schemas.events import EventKind

from .trajectory import RunInfo, Step, Trajectory

__all__ = ["timeline", "step_detail", "to_json", "runs_table"]


def _short(text: str, width: int = 72) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _when(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if ns else "-"


def _last_text(messages_json: str) -> str:
    try:
        messages = json.loads(messages_json)
    except ValueError:
        return messages_json
    for message in reversed(messages):
        for part in message.get("parts", []):
            if part.get("type") == "text":
                return f'{message.get("role")}: {part.get("content")}'
            if part.get("type") == "tool_call":
                return f'{message.get("role")} → {part.get("name")}({json.dumps(part.get("arguments"))})'
            if part.get("type") == "tool_call_response":
                return f'tool: {part.get("response")}'
    return ""


def _summary(step: Step) -> str:
    attrs = step.attributes
    if step.kind is EventKind.MODEL_CALL:
        asked = _last_text(attrs.get(A.GEN_AI_INPUT_MESSAGES, "[]"))
        got = _last_text(attrs.get(A.GEN_AI_OUTPUT_MESSAGES, "[]"))
        tokens = f"{step.input_tokens}→{step.output_tokens} tok"
        return f"{_short(asked, 40)}  ⇒  {_short(got, 48)}  [{','.join(step.finish_reasons)}; {tokens}]"
    if step.kind is EventKind.TOOL_CALL:
        return f"{_short(attrs.get(A.GEN_AI_TOOL_CALL_ARGUMENTS, ''), 40)}  ⇒  " \
               f"{_short(attrs.get(A.GEN_AI_TOOL_CALL_RESULT, step.status_message), 48)}"
    if step.kind is EventKind.RUN:
        return f"agent {attrs.get(A.GEN_AI_AGENT_NAME, '')} tags {attrs.get(A.RUN_TAGS, '[]')}"
    return _short(step.status_message)


def _header(run: RunInfo) -> list[str]:
    return [
        f"run {run.run_id}  agent {run.agent or '-'}  outcome {run.outcome or '-'}"
        + (f"  tags {', '.join(run.tags)}" if run.tags else ""),
        f"started {_when(run.start_ns)}  took {(run.end_ns - run.start_ns) / 1e9:.3f}s  events {run.event_count}"
        f"  errors {run.error_count}  tokens {run.input_tokens}→{run.output_tokens}"
        + (f"  forked from {run.parent_run_id} at step {run.fork_step}" if run.fork_step else
           f"  replay of {run.parent_run_id}" if run.parent_run_id else ""),
    ]


def timeline(trajectory: Trajectory) -> str:
    lines = _header(trajectory.run)
    lines.append(f"{'step':>4} {'seq':>5}  {'kind':<10} {'name':<28} {'ms':>8}  payloads / what happened")
    for step in trajectory:
        blobs = " ".join(f"{role}={_size(step.blob_sizes.get(role, 0))}" for role in sorted(step.blobs))
        mark = "✗" if step.failed else " "
        lines.append(f"{step.index:>4} {step.seq or '-':>5}{mark} {step.kind.value:<10} {_short(step.name, 28):<28} "
                     f"{step.duration_ms:>8.1f}  {blobs}")
        summary = _summary(step)
        if summary:
            lines.append(f"{'':>22}{summary}")
    return "\n".join(lines)


def _step_dict(step: Step, with_payloads: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "step": step.index, "seq": step.seq, "kind": step.kind.value, "name": step.name,
        "span_id": step.span_id, "parent_span_id": step.parent_span_id, "start_ns": step.start_ns,
        "end_ns": step.end_ns, "status": step.status, "status_message": step.status_message,
        "operation": step.operation, "provider": step.provider, "request_model": step.request_model,
        "response_model": step.response_model, "tool_name": step.tool_name, "input_tokens": step.input_tokens,
        "output_tokens": step.output_tokens, "finish_reasons": list(step.finish_reasons),
        "blobs": {role: {"sha256": h, "size": step.blob_sizes.get(role, 0)} for role, h in step.blobs.items()},
        "attributes": step.attributes,
    }
    if with_payloads:
        data["payloads"] = {role: step.blob(role).decode("utf-8", "replace") for role in step.blobs}
    return data


def step_detail(step: Step) -> str:
    lines = [f"step {step.index} (seq {step.seq}) {step.kind.value} {step.name}  {step.status}"
             f"  {step.duration_ms:.1f} ms"]
    lines += [f"  {key} = {value}" for key, value in sorted(step.attributes.items())]
    for role in sorted(step.blobs):
        text = step.blob(role).decode("utf-8", "replace")
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
        lines.append(f"  --- {role} ({_size(step.blob_sizes.get(role, 0))}, sha256 {step.blobs[role][:16]}…)")
        lines += [f"  {line}" for line in text.splitlines()]
    return "\n".join(lines)


def to_json(trajectory: Trajectory, step: int | None = None) -> str:
    run = trajectory.run
    if step is not None:
        return json.dumps(_step_dict(trajectory.step(step), True), indent=2, ensure_ascii=False)
    return json.dumps({"run": run.__dict__ | {"tags": list(run.tags)},
                       "steps": [_step_dict(s, False) for s in trajectory]}, indent=2, ensure_ascii=False)


def runs_table(runs: list[dict[str, Any]]) -> str:
    lines = [f"{'run':<32}  {'agent':<18} {'outcome':<8} {'started':<23} {'events':>6} {'errors':>6}  tags"]
    for run in runs:
        lines.append(f"{run['run_id']:<32}  {_short(run['agent'], 18):<18} {run['outcome']:<8} "
                     f"{_when(run['start_ns']):<23} {run['event_count']:>6} {run['error_count']:>6}  "
                     f"{', '.join(run['tags'])}")
    return "\n".join(lines)
