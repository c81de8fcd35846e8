"""The GenAI attributes read streams and bodies with a fast JSON parser; what it refuses must read as before."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from tracetape.instrumentation import _json
from tracetape.instrumentation._genai import chat_response, chat_stream, sse_json


def _spec_payloads(events: list[bytes]) -> list[object]:
    """What a reader that follows the SSE spec finds: each event's data, parsed by ``json`` when it is an object.

    Lines end at CR LF, CR or LF (nothing else); a ``data`` field's value loses one leading space, and
    an event's data lines are joined with LF.
    """
    found = []
    for event in events:
        lines = re.split(r"\r\n|\r|\n", event.decode())
        data = "\n".join(line[5:].removeprefix(" ") for line in lines if line.startswith("data:"))
        try:
            value = json.loads(data)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)
_objects = st.dictionaries(st.text(max_size=8), _values, max_size=4)


def _event(shape: str, value: dict) -> bytes:
    text = json.dumps(value, ensure_ascii=False)
    return {
        "plain": f"data: {text}\n\n",
        "no space": f"data:{text}\n\n",
        "named": f"event: delta\ndata: {text}\n\n",
        "with id": f"id: 7\ndata: {text}\n\n",
        "comment": f": keep-alive\ndata: {text}\n\n",
        "two values": f"data: {text},{text}\n\n",  # not one JSON value: a reader skips it
        "split line": f"data: {text[:1]}\n{text[1:]}\n\n",  # the second line is no data line
        "crlf": f"data: {text}\r\n\r\n",
        "done": "data: [DONE]\n\n",
    }[shape].encode()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["plain"] * 6 + ["no space", "named", "with id", "comment", "two values",
                                                         "split line", "crlf", "done"]), _objects), max_size=8))
def test_stream_events_read_as_a_plain_sse_reader_reads_them(shaped):
    """Whatever the events' shape, the JSON objects found are exactly those a plain SSE reader finds."""
    events = [_event(shape, value) for shape, value in shaped]
    found = [value for _, value in sse_json(events) if isinstance(value, dict)]
    assert found == _spec_payloads(events)


def test_a_stream_with_values_the_fast_parser_refuses_still_folds():
    """NaN is not JSON, but providers' SDKs read it: the stream folds as it did with the standard parser."""
    chunk = {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
    events = [f"data: {json.dumps(chunk)}\n\n".encode(),
              b'data: {"id": "c1", "choices": [{"index": 0, "delta": {"content": " there"}, "logprobs": NaN,'
              b' "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}\n\n',
              b"data: [DONE]\n\n"]
    folded = chat_stream(events)
    assert json.loads(folded["gen_ai.output.messages"])[0]["parts"] == [{"type": "text", "content": "hi there"}]
    assert folded["gen_ai.response.finish_reasons"] == ["stop"]
    assert (folded["gen_ai.usage.input_tokens"], folded["gen_ai.usage.output_tokens"]) == (3, 2)


def test_a_response_body_with_values_the_fast_parser_refuses_reads_as_before():
    body = b'{"id": "r1", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},' \
           b' "finish_reason": "stop", "logprobs": NaN}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}'
    attributes = chat_response(body)
    assert attributes["gen_ai.response.id"] == "r1" and attributes["gen_ai.response.finish_reasons"] == ["stop"]


def test_json_falls_back_for_what_the_fast_parser_refuses_and_fails_as_json_does():
    assert _json.loads(b'{"a": NaN}')["a"] != _json.loads(b'{"a": NaN}')["a"]  # NaN, as json reads it
    assert _json.loads('{"a": "\u00e9"}') == {"a": "\u00e9"}
    assert json.loads(_json.dumps({1: "one", "two": 2})) == {"1": "one", "two": 2}  # a key that is not a string
    assert json.loads(_json.dumps({"big": 2**80})) == {"big": 2**80}
    assert json.loads(_json.dumps({"thing": object})) == {"thing": repr(object)}
    for bad in (b"{", b"", b"\xff\xfe"):
        try:
            _json.loads(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was read as JSON")
