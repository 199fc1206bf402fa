"""Versioned byte framing for everything the sketches package serialises.

Layout: 4-byte magic, u16 format version, u32 body length, u32 CRC-32 of the body,
then a msgpack body decoded into a typed ``msgspec.Struct``. Anything that does not
match raises :class:`~sketches.errors.StateFormatError`; corrupt or truncated bytes
never reach the datasketches deserialisers (which do not all check their input).
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

import msgspec

from sketches.errors import StateFormatError

_HEADER = struct.Struct(">4sHII")
HEADER_SIZE = _HEADER.size

T = TypeVar("T")

_ENCODER = msgspec.msgpack.Encoder()
_DECODERS: dict[type[Any], msgspec.msgpack.Decoder[Any]] = {}
_CHECKED: ContextVar[bool] = ContextVar("sketches_codec_checked", default=False)
"""True while the bytes being decoded lie inside a body whose checksum was just checked
(:func:`checked_body`): their own checksums guard nothing more and are not recomputed."""


@contextlib.contextmanager
def checked_body() -> Iterator[None]:
    """Decode nested framed bytes (e.g. a profile's columns) without checking their own
    CRCs again: the enclosing body's CRC, checked just before, covers every byte of them.
    Header, length and msgpack checks still apply."""
    token = _CHECKED.set(True)
    try:
        yield
    finally:
        _CHECKED.reset(token)


def pack(magic: bytes, version: int, body: object) -> bytes:
    """Frame ``body`` (a msgspec-encodable object) behind the magic + version header."""
    payload = _ENCODER.encode(body)
    return _HEADER.pack(magic, version, len(payload), zlib.crc32(payload)) + payload


def peek_magic(data: bytes) -> bytes:
    """The magic of framed bytes, or a StateFormatError if there is no header at all."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise StateFormatError(f"expected bytes, got {type(data).__name__}")
    if len(data) < HEADER_SIZE:
        raise StateFormatError(f"state too short ({len(data)} bytes): truncated or not driftline")
    return bytes(data[:4])


def unpack(data: bytes, magic: bytes, version: int, body_type: type[T]) -> T:
    """Check header and checksum of ``data`` and decode its body as ``body_type``."""
    found = peek_magic(data)
    what = magic.decode("ascii", "replace")
    if found != magic:
        raise StateFormatError(f"not a {what} state (magic {found!r}, expected {magic!r})")
    _, found_version, length, crc = _HEADER.unpack_from(data)
    if found_version != version:
        raise StateFormatError(
            f"{what} state has format version {found_version}; this driftline reads {version}"
        )
    payload = memoryview(data)[HEADER_SIZE:]  # (no copy)
    if len(payload) != length:
        raise StateFormatError(f"{what} state truncated: {len(payload)} of {length} body bytes")
    if not _CHECKED.get() and zlib.crc32(payload) != crc:
        raise StateFormatError(f"{what} state corrupt: checksum mismatch")
    decoder = _DECODERS.get(body_type)
    if decoder is None:
        decoder = _DECODERS[body_type] = msgspec.msgpack.Decoder(body_type)
    try:
        out: T = decoder.decode(payload)
        return out
    except Exception as exc:  # any library error on bad bytes is a format error
        raise StateFormatError(f"{what} state unreadable: {exc}") from exc
