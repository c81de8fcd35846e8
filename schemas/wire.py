"""Protocol Buffers wire primitives, for code that writes or walks OTLP bytes without message objects.

Building protobuf message objects costs about a microsecond per field in Python; the exporter and the
collector handle tens of fields per span, so both write and read the wire format directly.
"""

from __future__ import annotations

__all__ = ["varint", "read_varint", "field", "ONE_BYTE"]

# The varints below 128, prebuilt: most lengths in a span are.
ONE_BYTE = tuple(bytes((n,)) for n in range(0x80))


def varint(value: int) -> bytes:
    """*value* (non-negative, below 2**64) as a base-128 varint."""
    if value < 0x80:
        return ONE_BYTE[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(data: bytes | memoryview, offset: int) -> tuple[int, int]:
    """(value, offset after it); raises IndexError past the end, ValueError on an overlong varint."""
    value = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, offset
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, *payload*."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload
