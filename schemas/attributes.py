"""Span attribute names: the OpenTelemetry GenAI conventions plus tracetape's own.

Spans use the OTel GenAI names so that any OTel backend can read them;
tracetape's additions live under ``tracetape.`` so they never collide.
"""

from __future__ import annotations

__all__ = [
    "GEN_AI_OPERATION_NAME", "GEN_AI_PROVIDER_NAME", "GEN_AI_SYSTEM", "GEN_AI_REQUEST_MODEL",
    "GEN_AI_RESPONSE_MODEL", "GEN_AI_RESPONSE_ID", "GEN_AI_RESPONSE_FINISH_REASONS",
    "GEN_AI_REQUEST_TEMPERATURE", "GEN_AI_REQUEST_TOP_P", "GEN_AI_REQUEST_MAX_TOKENS",
    "GEN_AI_REQUEST_SEED", "GEN_AI_INPUT_MESSAGES", "GEN_AI_OUTPUT_MESSAGES",
    "GEN_AI_TOOL_DEFINITIONS", "GEN_AI_USAGE_INPUT_TOKENS", "GEN_AI_USAGE_OUTPUT_TOKENS",
    "GEN_AI_TOOL_NAME", "GEN_AI_TOOL_CALL_ID", "GEN_AI_TOOL_CALL_ARGUMENTS",
    "GEN_AI_TOOL_CALL_RESULT", "GEN_AI_AGENT_NAME", "GEN_AI_CONVERSATION_ID",
    "ERROR_TYPE", "SERVICE_NAME",
    "RUN_ID", "TASK", "SEQ", "EVENT_KIND", "PROJECT", "RUN_TAGS", "RUN_OUTCOME", "RUN_EVENT_COUNT",
    "RUN_ERROR_COUNT", "RUN_PARENT_ID", "RUN_FORK_STEP", "BLOB_PREFIX", "BLOB_SIZE_PREFIX",
    "blob_attr", "blob_size_attr", "PREVIEW_TRUNCATED",
]

# OpenTelemetry GenAI semantic conventions (gen_ai.* as of semconv 1.37+).
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_SYSTEM = "gen_ai.system"  # pre-1.37 name; read from foreign spans, never written
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_SEED = "gen_ai.request.seed"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_TOOL_DEFINITIONS = "gen_ai.tool.definitions"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
ERROR_TYPE = "error.type"
SERVICE_NAME = "service.name"

# tracetape's own.
RUN_ID = "tracetape.run.id"
# Logical task path ("0", "0.2", "0.2.1"): creation order of threads/tasks, stable across runs.
TASK = "tracetape.task"
SEQ = "tracetape.seq"
EVENT_KIND = "tracetape.event.kind"
PROJECT = "tracetape.project"
RUN_TAGS = "tracetape.run.tags"
RUN_OUTCOME = "tracetape.run.outcome"
RUN_EVENT_COUNT = "tracetape.run.event_count"
RUN_ERROR_COUNT = "tracetape.run.error_count"
RUN_PARENT_ID = "tracetape.run.parent_id"
RUN_FORK_STEP = "tracetape.run.fork_step"
PREVIEW_TRUNCATED = "tracetape.preview.truncated"

# A payload is linked by two attributes: tracetape.blob.<role> = sha256 hex,
# tracetape.blob_size.<role> = byte length. Roles: request, response, result, ...
BLOB_PREFIX = "tracetape.blob."
BLOB_SIZE_PREFIX = "tracetape.blob_size."


def blob_attr(role: str) -> str:
    """Attribute holding the SHA-256 of the *role* payload."""
    return BLOB_PREFIX + role


def blob_size_attr(role: str) -> str:
    """Attribute holding the byte length of the *role* payload."""
    return BLOB_SIZE_PREFIX + role
