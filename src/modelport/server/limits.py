"""Request-body limits: size (after decompression), chunk count, media type and JSON nesting depth.

The body is read straight from the ASGI ``receive`` channel; a ``Content-Length`` over the cap is
refused before a byte is read, a streamed body as soon as it crosses the cap, and a compressed body
(``gzip``/``deflate``) as soon as its *decompressed* size does, so a decompression bomb never
inflates in memory. Media types are JSON (and, for V2, the binary extension); ``text/csv`` (UTF-8)
only where the caller asks for it (MLflow's ``/invocations``), under the JSON size cap; anything
else is a 415, and pickle media types are refused outright. JSON depth is checked without
recursion: a byte count bounds it for free, and a vectorised bracket scan measures it exactly when
the bound is not enough.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import orjson
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from modelport.core.errors import BadRequest
from modelport.server.errors import UnsupportedMediaType, too_large

BINARY_HEADER = b"inference-header-content-length"
_PICKLE_MARKERS = ("pickle", "python-serialized", "x-python")
_JSON_TYPES = ("", "application/json", "text/json", "text/plain")
_BINARY_TYPES = ("application/octet-stream", "application/vnd.sagemaker-triton.binary+json")
_CSV_TYPE = "text/csv"
_CSV_CHARSETS = ("utf-8", "utf8", "us-ascii", "ascii")
_JSON_HINT = "Send application/json (or application/octet-stream with Inference-Header-Content-Length)."
_OPEN = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSE = np.frombuffer(b"]}", dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """The caps applied to one request body."""

    max_json_bytes: int
    max_binary_bytes: int
    max_chunks: int
    max_json_depth: int


class Body(NamedTuple):
    """A request body read within its limits.

    Attributes:
        data: The (decompressed) bytes.
        json_length: For a V2 binary-extension request, the length of the leading JSON header;
            ``None`` for a plain JSON body.
        csv: Whether the body is ``text/csv`` (only where :func:`read_body` was told to accept it).
    """

    data: bytes
    json_length: int | None = None
    csv: bool = False


def _check_media_type(content_type: str, binary: bool, accept_csv: bool) -> bool:
    """Refuse a media type the route does not read; return whether the body is CSV."""
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if any(marker in media for marker in _PICKLE_MARKERS):
        raise UnsupportedMediaType(
            f"Content type {media!r} is refused: this server never deserialises pickle.",
            hint="Send JSON (application/json), or the V2 binary tensor extension.",
        )
    if media in _JSON_TYPES or media.endswith("+json") or (binary and media in _BINARY_TYPES):
        return False
    if media == _CSV_TYPE:
        _check_csv(params, binary, accept_csv)
        return True
    raise UnsupportedMediaType(
        f"Content type {media!r} is not supported.",
        hint="Send application/json or text/csv." if accept_csv else _JSON_HINT,
    )


def _check_csv(params: str, binary: bool, accept_csv: bool) -> None:
    if not accept_csv:
        raise UnsupportedMediaType(
            "Content type 'text/csv' is accepted only by POST /invocations (MLflow); this route reads JSON.",
            hint=_JSON_HINT,
        )
    if binary:
        raise BadRequest(
            "A text/csv body cannot carry Inference-Header-Content-Length (that is for V2 binary tensors).",
            hint="Drop the Inference-Header-Content-Length header.",
        )
    for param in params.split(";"):
        key, _, value = param.partition("=")
        charset = value.strip().strip('"').lower()
        if key.strip().lower() == "charset" and charset not in _CSV_CHARSETS:
            raise UnsupportedMediaType(
                f"CSV charset {charset!r} is not supported.",
                hint="Send the CSV encoded as UTF-8 (Content-Type: text/csv; charset=utf-8).",
            )


class _Decoder:
    """Decompresses ``gzip``/``deflate`` chunks without ever holding more than ``limit`` bytes."""

    def __init__(self, encoding: str, limit: int) -> None:
        if encoding not in ("gzip", "deflate", "x-gzip"):
            raise UnsupportedMediaType(
                f"Content-Encoding {encoding!r} is not supported.",
                hint="Send the body uncompressed, or compressed with gzip or deflate.",
            )
        self._zlib = zlib.decompressobj(wbits=47 if encoding != "deflate" else 15)
        self._limit = limit
        self.size = 0

    def feed(self, chunk: bytes) -> bytes:
        try:
            out = self._zlib.decompress(chunk, self._limit + 1 - self.size)
        except zlib.error as exc:
            raise BadRequest(
                f"The compressed request body is corrupt ({exc}).",
                hint="Check the Content-Encoding header matches how the body was compressed.",
            ) from exc
        self.size += len(out)
        if self.size > self._limit or self._zlib.unconsumed_tail:
            raise too_large(self._limit)
        return out

    def finish(self) -> bytes:
        out = self._zlib.flush()
        self.size += len(out)
        if self.size > self._limit:
            raise too_large(self._limit)
        return out


def _scan(
    headers: list[tuple[bytes, bytes]],
) -> tuple[bytes | None, bytes | None, bytes | None, bytes | None, bool]:
    """Content type, length and encoding, the binary-extension length, and whether a transfer
    encoding is set: the headers that matter, in one pass."""
    content_type = length = encoding = binary_length = None
    transfer_encoded = False
    for name, value in headers:
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            length = value
        elif name == b"content-encoding":
            encoding = value
        elif name == BINARY_HEADER:
            binary_length = value
        elif name == b"transfer-encoding":
            transfer_encoded = True
    return content_type, length, encoding, binary_length, transfer_encoded


class BodyCheck(NamedTuple):
    """What a request's headers say about its body, checked before a byte of it is read.

    Attributes:
        limit: The size cap that applies (JSON or binary).
        decoder: Decompresses a ``Content-Encoding`` body; ``None`` for an uncompressed one.
        binary_length: The raw ``Inference-Header-Content-Length`` header (V2 binary extension).
        csv: Whether the body is ``text/csv``.
        sized: Whether its length is declared (``Content-Length``, no ``Transfer-Encoding``).
    """

    limit: int
    decoder: _Decoder | None
    binary_length: bytes | None
    csv: bool
    sized: bool

    def body(self, data: bytes) -> Body:
        """The :class:`Body` of the complete, uncompressed ``data``.

        Raises:
            PayloadTooLarge: ``data`` is over the cap.
            BadRequest: A bad binary header length.
        """
        if len(data) > self.limit:
            raise too_large(self.limit)
        if self.binary_length is None:
            return Body(data, None, self.csv)
        return Body(data, _json_length(self.binary_length, len(data)))


def check_body_headers(
    headers: list[tuple[bytes, bytes]], limits: BodyLimits, *, accept_csv: bool = False
) -> BodyCheck:
    """Check the media type, encoding and declared length of a request body before reading it.

    Args:
        headers: The request's raw headers.
        limits: The caps.
        accept_csv: Also take ``text/csv`` (UTF-8), capped like JSON.

    Raises:
        PayloadTooLarge: A declared ``Content-Length`` over the cap (uncompressed bodies).
        UnsupportedMediaType: A pickle or unknown media type (``text/csv`` unless ``accept_csv``), a
            CSV charset other than UTF-8, or an unknown content encoding.
        BadRequest: CSV with the binary extension header.
    """
    content_type, declared, content_encoding, binary_length, transfer_encoded = _scan(headers)
    binary = binary_length is not None
    csv = False
    if content_type is not None and content_type != b"application/json":
        csv = _check_media_type(content_type.decode("latin-1"), binary, accept_csv)
    limit = limits.max_binary_bytes if binary else limits.max_json_bytes
    decoder = None
    if content_encoding is not None:
        encoding = content_encoding.decode("latin-1").strip().lower()
        if encoding != "identity":
            decoder = _Decoder(encoding, limit)
    if decoder is None and declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    return BodyCheck(limit, decoder, binary_length, csv, declared is not None and not transfer_encoded)


async def read_body(
    receive: Receive, headers: list[tuple[bytes, bytes]], limits: BodyLimits, *, accept_csv: bool = False
) -> Body:
    """Read the request body from ``receive`` within ``limits``.

    Args:
        receive: The ASGI receive channel.
        headers: The request's raw headers.
        limits: The caps.
        accept_csv: Also take ``text/csv`` (UTF-8), capped like JSON; the body comes back with
            ``csv=True``.

    Raises:
        PayloadTooLarge: The body (decompressed) or its chunk count is over the cap.
        UnsupportedMediaType: A pickle or unknown media type (``text/csv`` unless ``accept_csv``), a
            CSV charset other than UTF-8, or an unknown content encoding.
        BadRequest: A corrupt compressed body, or a bad binary header length.
    """
    check = check_body_headers(headers, limits, accept_csv=accept_csv)
    message = await receive()
    if check.decoder is None and message["type"] == "http.request" and not message.get("more_body", False):
        return check.body(message.get("body", b""))  # the whole body in one message: the usual case
    data = await _receive_all(receive, check.decoder, check.limit, limits.max_chunks, message)
    return check.body(data)


async def _receive_all(
    receive: Receive, decoder: _Decoder | None, limit: int, max_chunks: int, first: Message
) -> bytes:
    parts: list[bytes] = []
    size = chunks = 0
    message = first
    while True:
        if chunks:
            message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        chunks += 1
        if chunks > max_chunks:
            raise too_large(limit, what=f"Request body in more than {max_chunks} chunks")
        if decoder is not None:
            chunk = decoder.feed(chunk)
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        if chunk:
            parts.append(chunk)
        if not message.get("more_body", False):
            break
    if decoder is not None:
        parts.append(decoder.finish())
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _json_length(raw: bytes, size: int) -> int:
    if not raw.strip().isdigit() or int(raw) > size:
        raise BadRequest(
            f"Inference-Header-Content-Length {raw.decode('latin-1')!r} is not a length within the body "
            f"({size} bytes).",
            hint="Set it to the byte length of the JSON header that starts the body.",
        )
    return int(raw)


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays/objects in a valid JSON document ``data``.

    Brackets inside strings are ignored: a quote counts unless an odd run of backslashes escapes it.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(buf == ord('"'))
    if quotes.size:
        backslash = buf == ord("\\")
        positions = np.arange(buf.size)
        last_other = np.maximum.accumulate(np.where(backslash, -1, positions))
        before = quotes - 1
        run = np.where(before >= 0, before - last_other[np.maximum(before, 0)], 0)
        real = quotes[run % 2 == 0]
        toggles = np.zeros(buf.size + 1, dtype=np.int8)
        toggles[real] = 1
        in_string = (np.cumsum(toggles[:-1]) % 2).astype(bool)
    else:
        in_string = np.zeros(buf.size, dtype=bool)
    step = np.isin(buf, _OPEN).astype(np.int32) - np.isin(buf, _CLOSE).astype(np.int32)
    step[in_string] = 0
    return int(np.cumsum(step).max(initial=0))


def parse_json(data: bytes, max_depth: int) -> Any:
    """Parse ``data`` with orjson and refuse nesting deeper than ``max_depth``.

    Raises:
        BadRequest: Malformed JSON (the parser's message names the position) or too deep.
    """
    value = load_json(data)
    check_depth(data, max_depth)
    return value


def load_json(data: bytes) -> Any:
    """Parse ``data`` with orjson, without the depth check (callers that know the document's depth
    from its shape, such as the V2 one-pass reader, run :func:`check_depth` only when they don't).

    Raises:
        BadRequest: An empty body or malformed JSON.
    """
    if not data:
        raise BadRequest("The request body is empty.", hint="Send a JSON document.")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Malformed JSON body: {exc}.", hint="Send a valid JSON document (UTF-8).") from exc


def check_depth(data: bytes, max_depth: int) -> None:
    """Refuse a JSON document nested deeper than ``max_depth``.

    Raises:
        BadRequest: Too deep (the message gives the depth found).
    """
    if data.count(b"[") + data.count(b"{") > max_depth:
        depth = json_depth(data)
        if depth > max_depth:
            raise BadRequest(
                f"JSON nesting depth {depth} exceeds the limit of {max_depth}.",
                hint="Flatten the request; model inputs need at most a few levels of nesting.",
            )
