"""Redaction at capture: secrets and personal data never reach the store, whichever way they travel."""

from __future__ import annotations

import clickhouse_connect
import pytest

from determinism_helpers import AGENTS, collector, shared_collector  # noqa: F401 - fixtures
from tracetape.instrumentation import redaction
from tracetape.instrumentation._payload import preview, redact_headers

AGENT = AGENTS / "determinism_privacy.py"
SECRETS = (
    "sk-test-secret-key-123",  # the API key, sent in the Authorization header
    "sk-live-0123456789abcdefSECRET",  # pasted into the prompt
    "zzz-tool-secret-material-42",  # in a tool's result (and so in the next request)
    "tok_filesecret_abcdef123456",  # in a file the agent reads
    "sk-filekey0123456789abcdef",
    "hunter2-secret-pass",  # in the agent's memory
    "sk-argv0123456789abcdefgh",  # on the command line
    "alice@example.com",  # personal data (prompt, file, HTTP header): a user hook
    "123-45-6789",  # personal data (prompt, file): a user regex
)


@pytest.fixture
def user_rules():
    redaction.configure(patterns=[r"\b\d{3}-\d{2}-\d{4}\b"],
                        hooks=[lambda role, data: data.replace(b"alice@example.com", b"[EMAIL]")])
    yield
    redaction.configure()


def test_built_in_rules_remove_keys_and_tokens_but_keep_the_text_readable():
    text = ('Authorization: Bearer abc.def.ghijklmnop\n{"api_key": "k-12345678", "model": "gpt-4o", "max_tokens": 9}'
            "\nkey sk-proj-ABCDEFGHIJKLMNOPQRSTUV and AKIAABCDEFGHIJKLMNOP; password=hunter22&user=bob")
    assert redaction.redact_text(text) == (
        'Authorization: [REDACTED]\n{"api_key": "[REDACTED]", "model": "gpt-4o", "max_tokens": 9}'
        "\nkey [REDACTED] and [REDACTED]; password=[REDACTED]&user=bob")
    assert redaction.redact("request", text.encode()) == redaction.redact_text(text).encode()
    harmless = 'a task-manager with "password": {"type": "string"} and basic tokens'
    assert redaction.redact_text(harmless) == harmless


@pytest.mark.parametrize("key", ["ASIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP", "gho_" + "a" * 36, "ghs_" + "b" * 36,
                                 "ghu_" + "c" * 36, "ghr_" + "d" * 36, "ghp_" + "e" * 36, "github_pat_" + "f" * 40])
@pytest.mark.parametrize("padding", [0, 4096], ids=["short", "long"])
def test_every_built_in_key_shape_is_removed_alone_in_short_and_long_payloads(key, padding):
    text = "x" * padding + f" key {key}; the rest"
    redacted = redaction.redact("response", text.encode()).decode()
    assert redacted == "x" * padding + " key [REDACTED]; the rest"
    assert redaction.redact_text(text) == redacted


def test_user_patterns_and_hooks_apply_to_payloads_and_previews(user_rules):
    data = b"ssn 123-45-6789, mail alice@example.com"
    assert redaction.redact("response", data) == b"ssn [REDACTED], mail [EMAIL]"
    assert preview("ssn 123-45-6789, mail alice@example.com") == "ssn [REDACTED], mail [EMAIL]"


def test_more_key_shapes_on_request():
    text = "google AIza" + "B" * 35 + " and slack xoxb-1234567890-abcdef"
    assert redaction.redact_text(text) == text  # not built in: each built-in shape scans every payload
    redaction.configure(patterns=redaction.MORE_KEY_PATTERNS)
    try:
        assert redaction.redact_text(text) == "google [REDACTED] and slack [REDACTED]"
    finally:
        redaction.configure()


def test_a_failing_hook_withholds_the_payload_instead_of_leaking_it():
    def broken(role: str, data: bytes) -> bytes:
        raise RuntimeError("bug in the user's hook")

    redaction.configure(hooks=[broken])
    try:
        assert b"123-45-6789" not in redaction.redact("request", b"ssn 123-45-6789")
    finally:
        redaction.configure()


def test_headers_lose_credentials_by_name_and_by_value():
    headers = {"Authorization": "Bearer sk-abc", "X-Api-Key": "k", "X-Trace": "Bearer tok_0123456789abc",
               "Content-Type": "application/json"}
    assert redact_headers(headers) == {"authorization": "[REDACTED]", "x-api-key": "[REDACTED]",
                                       "x-trace": "Bearer [REDACTED]", "content-type": "application/json"}


def test_no_secret_reaches_any_table_of_the_store_and_the_redacted_recording_replays(tmp_path, collector,
                                                                                     mock_openai, agent):
    root = tmp_path / "work"
    root.mkdir()
    (root / "service.env").write_text(
        "TOKEN_HEADER=Authorization: Bearer tok_filesecret_abcdef123456\nOPENAI_API_KEY=sk-filekey0123456789abcdef\n"
        "OWNER=alice@example.com SSN=123-45-6789\n", encoding="utf-8")
    env = {"TRACETAPE_FILE_ROOTS": str(root)}
    result = agent(AGENT, collector, "--root", str(root), "--api-key", "sk-argv0123456789abcdefgh", mock=mock_openai,
                   extra_env=env)
    assert result["answer"].startswith("The weather in Paris") and result["config_lines"] == 3
    assert mock_openai.requests[0].headers["authorization"] == "Bearer sk-test-secret-key-123"
    assert "sk-live-0123456789abcdefSECRET" in mock_openai.requests[0].body.decode()
    assert mock_openai.requests[-1].headers["x-user-email"] == "alice@example.com"

    # The recording holds redacted requests; the same code, replayed strictly, asks with the secrets in
    # place: the requests are compared redacted, so every call is served and none diverges.
    asked = len(mock_openai.requests)
    replayed = agent(AGENT, collector, "--root", str(root), "--api-key", "sk-argv0123456789abcdefgh",
                     "--replay", result["run_id"], "--store", collector.sql, mock=mock_openai, extra_env=env)
    assert replayed["divergences"] == []
    assert replayed["served"] >= 6  # environment, file read, memory, two model calls, tool call, HTTP call
    assert len(mock_openai.requests) == asked, "a replay makes no call to the provider"
    # What is served is what was recorded: redacted.
    assert replayed["answer"] == result["answer"].replace("zzz-tool-secret-material-42", "[REDACTED]")

    port = int(collector.sql.rsplit(":", 1)[1])
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port)
    try:
        tables = [row[0] for row in client.query(
            "SELECT name FROM system.tables WHERE database = 'tracetape'").result_rows]
        assert {"spans", "runs", "blobs", "blob_chunks"} <= set(tables)
        recorded = client.command("SELECT count() FROM tracetape.spans WHERE run_id = {r:String}",
                                  parameters={"r": result["run_id"]})
        assert recorded >= 8  # run, environment, file read, memory, two model calls, tool call, HTTP call
        for table in tables:
            found = client.query(
                "SELECT arrayFilter(s -> position(formatRow('TSV', *), s) > 0, {s:Array(String)}) AS hits "
                f"FROM tracetape.{table} WHERE multiSearchAny(formatRow('TSV', *), {{s:Array(String)}})",
                parameters={"s": list(SECRETS)}).result_rows
            assert found == [], f"secrets found in table {table}: {found[:3]}"
    finally:
        client.close()


CONVERSATION = b'{"messages":[{"role":"system","content":"' + b"You plan trips. " * 200 + b'"}' + b"%s" + \
    b'],"model":"gpt-4o","tools":[' + b'{"name":"lookup","description":"' + b"Looks things up. " * 200 + b'"}]}'


@pytest.mark.parametrize("turn, expected", [
    (b',{"role":"user","content":"my key is sk-proj-ABCDEFGHIJKLMNOPQRSTUV"}',
     b',{"role":"user","content":"my key is [REDACTED]"}'),
    (b',{"role":"user","content":"Authorization: Bearer abcdefghijklmnop"}',
     b',{"role":"user","content":"Authorization: [REDACTED]"}'),
], ids=["key", "bearer"])
def test_a_secret_in_the_new_turn_of_a_resent_conversation_is_removed(turn, expected):
    """Requests repeat what an earlier one held; only the new part is scanned, and a secret there is still found."""
    clean = CONVERSATION % b""
    assert redaction.redact("request", clean) == clean
    assert redaction.redact("request", clean) == clean  # the same again: vouched for by the first
    assert redaction.redact("request", CONVERSATION % turn) == CONVERSATION % expected


def test_a_secret_across_the_edge_of_the_unchanged_part_is_removed():
    """A key that starts in bytes an earlier clean payload had and ends in new bytes is found whole."""
    before = b"x" * 3000 + b" id sk" + b"y" * 3000
    after = b"x" * 3000 + b" id sk-proj-ABCDEFGHIJKLMNOPQRSTUV " + b"y" * 3000
    assert redaction.redact("request", before) == before
    assert redaction.redact("request", after) == b"x" * 3000 + b" id [REDACTED] " + b"y" * 3000


def test_rules_added_later_apply_to_a_payload_cleared_before():
    payload = b"ticket CUST-123456 " * 100
    assert redaction.redact("request", payload) == payload
    redaction.configure(patterns=[r"CUST-\d{6}"])
    try:
        assert redaction.redact("request", payload) == b"ticket [REDACTED] " * 100
    finally:
        redaction.configure()


def test_a_resent_message_is_redacted_under_the_rules_in_force_when_its_preview_is_made():
    """Message previews are redacted once per message and reused; new rules apply to the reused ones too."""
    from tracetape.instrumentation._genai import chat_request

    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "ticket CUST-123456, key sk-live-0123456789abcdefSECRET"}],
            "tools": [{"type": "function", "function": {"name": "lookup", "description": "by CUST-654321"}}]}
    first = chat_request(body)
    assert "CUST-123456" in first["gen_ai.input.messages"] and "CUST-654321" in first["gen_ai.tool.definitions"]
    assert "sk-live" not in first["gen_ai.input.messages"] and "[REDACTED]" in first["gen_ai.input.messages"]
    assert chat_request(body) == first  # the same call again: the same previews
    redaction.configure(patterns=[r"CUST-\d{6}"])
    try:
        again = chat_request(body)
        assert "CUST-" not in again["gen_ai.input.messages"] + again["gen_ai.tool.definitions"]
        assert again["gen_ai.input.messages"] == first["gen_ai.input.messages"].replace("CUST-123456", "[REDACTED]")
    finally:
        redaction.configure()
    assert chat_request(body) == first


@pytest.mark.parametrize("across", [1700, 1840, 1900], ids=["before-the-cut", "across-the-cut", "after-the-cut"])
def test_a_message_longer_than_the_preview_is_cut_after_its_secrets_are_removed(across):
    """A message longer than the whole preview is its whole preview: redacted, then cut, a secret at the cut too."""
    from tracetape.instrumentation._genai import chat_request

    content = "a" * 100 + " key sk-live-0123456789abcdefSECRET " + "b" * across + " sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX " \
        + "c" * 5000
    shown = chat_request({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]})
    text = shown["gen_ai.input.messages"]
    assert len(text) == 2049 and text.endswith("…") and text.startswith('[{"role":"user"')
    assert "sk-live" not in text and "sk-proj" not in text and "[REDACTED]" in text
    redacted = redaction.redact_text(content)
    assert text[:-1] in '[{"role":"user","parts":[{"type":"text","content":"' + redacted
