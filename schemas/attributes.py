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
    "HTTP_RESPONSE_BODY_NOT_CAPTURED",
    "VALUES_COUNT",
    "VALUES_PREVIEW",
    "VALUES_DIVERGED",
    "FILE_PATH",
    "FILE_MODE",
    "FILE_SIZE",
    "FILE_HASH_ONLY",
    "FILE_CREATED",
    "FILE_ERRNO",
    "FILE_SHA256",
    "ENVIRONMENT_PREVIEW",
    "MEMORY_NAME",
    "MEMORY_PREVIEW",
    "MEMORY_DIVERGED",
    "SUBPROCESS_OUTPUT_TRUNCATED",
    "HTTP_RESPONSE_HEADERS",
    "HTTP_REQUEST_HEADERS",
    "HTTP_RESPONSE_REASON",
    "HTTP_RESPONSE_BODY_TRUNCATED",
    "RESPONSE_CONTENT_TYPE",
    "RESPONSE_REQUEST_ID",
    "STREAM_COMPLETED",
    "STREAM_CHUNKS",
    "STREAM_OFFSETS_MS",
    "GEN_AI_REQUEST_STOP_SEQUENCES",
    "GEN_AI_REQUEST_TOP_K",
    "GEN_AI_REQUEST_FREQUENCY_PENALTY",
    "GEN_AI_REQUEST_PRESENCE_PENALTY",
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
GEN_AI_REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_TOP_K = "gen_ai.request.top_k"
GEN_AI_REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"

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

# Details of particular event kinds.
HTTP_RESPONSE_BODY_NOT_CAPTURED = "tracetape.http.response.body_not_captured"
VALUES_COUNT = "tracetape.values.count"
VALUES_PREVIEW = "tracetape.values.preview"
VALUES_DIVERGED = "tracetape.values.diverged"
FILE_PATH = "tracetape.file.path"
FILE_MODE = "tracetape.file.mode"
FILE_SIZE = "tracetape.file.size"
FILE_HASH_ONLY = "tracetape.file.hash_only"
FILE_CREATED = "tracetape.file.created"
FILE_ERRNO = "tracetape.file.errno"
FILE_SHA256 = "tracetape.file.sha256"
ENVIRONMENT_PREVIEW = "tracetape.environment.preview"
MEMORY_NAME = "tracetape.memory.name"
MEMORY_PREVIEW = "tracetape.memory.preview"
MEMORY_DIVERGED = "tracetape.memory.diverged"
SUBPROCESS_OUTPUT_TRUNCATED = "tracetape.subprocess.output_truncated"
HTTP_RESPONSE_HEADERS = "tracetape.http.response.headers"  # JSON [[name, value], ...], secrets redacted
HTTP_REQUEST_HEADERS = "tracetape.http.request.headers"  # JSON {name: value}, secrets redacted
HTTP_RESPONSE_REASON = "tracetape.http.response.reason"
HTTP_RESPONSE_BODY_TRUNCATED = "tracetape.http.response.body_truncated"
RESPONSE_CONTENT_TYPE = "tracetape.response.content_type"
RESPONSE_REQUEST_ID = "tracetape.response.request_id"
STREAM_COMPLETED = "tracetape.stream.completed"
STREAM_CHUNKS = "tracetape.stream.chunks"
STREAM_OFFSETS_MS = "tracetape.stream.offsets_ms"

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
