"""Body limits: size before and after decompression, chunk count, media types, JSON depth."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import orjson
import pytest

from modelport.core.errors import BadRequest, PayloadTooLarge, Unsupported
from modelport.server.errors import UnsupportedMediaType
from modelport.server.limits import BodyLimits, json_depth, parse_json, read_body

pytestmark = pytest.mark.anyio

LIMITS = BodyLimits(max_json_bytes=1000, max_binary_bytes=4000, max_chunks=8, max_json_depth=5)


def _receiver(*chunks: bytes) -> Any:
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    taken: list[int] = []

    async def receive() -> dict[str, Any]:
        taken.append(1)
        return messages.pop(0)

    receive.taken = taken  # type: ignore[attr-defined]
    return receive


def _headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in values.items()]


async def test_reads_a_body_in_chunks() -> None:
    body = await read_body(_receiver(b'{"a":', b" 1}"), _headers(content_type="application/json"), LIMITS)
    assert body.data == b'{"a": 1}'
    assert body.json_length is None


async def test_declared_length_over_the_cap_is_refused_before_reading() -> None:
    receive = _receiver(b"x" * 10)
    with pytest.raises(PayloadTooLarge, match="1000 bytes"):
        await read_body(receive, _headers(content_length="5000"), LIMITS)
    assert receive.taken == []


async def test_streamed_body_over_the_cap_is_refused() -> None:
    with pytest.raises(PayloadTooLarge):
        await read_body(_receiver(b"x" * 600, b"x" * 600), [], LIMITS)


async def test_gzip_bomb_is_refused_by_decompressed_size() -> None:
    bomb = gzip.compress(b"0" * 1_000_000)
    assert len(bomb) < 2000
    with pytest.raises(PayloadTooLarge, match="after decompression"):
        await read_body(_receiver(bomb), _headers(content_encoding="gzip", content_length=str(len(bomb))), LIMITS)


async def test_gzip_and_deflate_bodies_are_decompressed() -> None:
    doc = b'{"inputs": [1, 2, 3]}'
    body = await read_body(_receiver(gzip.compress(doc)), _headers(content_encoding="gzip"), LIMITS)
    assert body.data == doc
    body = await read_body(_receiver(zlib.compress(doc)), _headers(content_encoding="deflate"), LIMITS)
    assert body.data == doc


async def test_corrupt_gzip_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="corrupt"):
        await read_body(_receiver(b"not gzip at all"), _headers(content_encoding="gzip"), LIMITS)


async def test_unknown_encoding_is_unsupported() -> None:
    with pytest.raises(Unsupported, match="br"):
        await read_body(_receiver(b"x"), _headers(content_encoding="br"), LIMITS)


async def test_too_many_chunks_are_refused() -> None:
    with pytest.raises(PayloadTooLarge, match="chunks"):
        await read_body(_receiver(*([b"1"] * 20)), [], LIMITS)


@pytest.mark.parametrize(
    "media", ["application/python-pickle", "application/x-pickle", "application/x-python-serialize"]
)
async def test_pickle_media_types_are_refused(media: str) -> None:
    with pytest.raises(Unsupported, match="pickle"):
        await read_body(_receiver(b"\x80\x04"), _headers(content_type=media), LIMITS)


async def test_other_media_types_are_refused() -> None:
    with pytest.raises(UnsupportedMediaType, match="text/csv' is accepted only by POST /invocations"):
        await read_body(_receiver(b"a,b"), _headers(content_type="text/csv"), LIMITS)
    with pytest.raises(UnsupportedMediaType, match="'text/xml' is not supported") as info:
        await read_body(_receiver(b"<a/>"), _headers(content_type="text/xml"), LIMITS, accept_csv=True)
    assert info.value.http_status == 415
    assert "text/csv" in (info.value.hint or "")


async def test_csv_where_accepted_is_capped_like_json() -> None:
    for media in ("text/csv", "text/csv; charset=utf-8", 'TEXT/CSV; header=present; charset="UTF-8"'):
        body = await read_body(_receiver(b"a,b\n", b"1,2\n"), _headers(content_type=media), LIMITS, accept_csv=True)
        assert (body.data, body.csv, body.json_length) == (b"a,b\n1,2\n", True, None)
    plain = await read_body(_receiver(b"{}"), _headers(content_type="application/json"), LIMITS, accept_csv=True)
    assert not plain.csv
    csv = _headers(content_type="text/csv", content_encoding="gzip")
    with pytest.raises(PayloadTooLarge, match="after decompression"):
        await read_body(_receiver(gzip.compress(b"1,2\n" * 1000)), csv, LIMITS, accept_csv=True)
    with pytest.raises(UnsupportedMediaType, match="charset 'latin-1'"):
        await read_body(_receiver(b"a"), _headers(content_type="text/csv; charset=latin-1"), LIMITS, accept_csv=True)
    binary = _headers(content_type="text/csv", inference_header_content_length="1")
    with pytest.raises(BadRequest, match="Inference-Header-Content-Length"):
        await read_body(_receiver(b"a"), binary, LIMITS, accept_csv=True)


async def test_binary_extension_uses_the_binary_cap_and_header_length() -> None:
    data = b'{"x": 1}' + b"\x00" * 2000
    headers = _headers(content_type="application/octet-stream", inference_header_content_length="8")
    body = await read_body(_receiver(data), headers, LIMITS)
    assert body.json_length == 8
    headers = _headers(inference_header_content_length="99999")
    with pytest.raises(BadRequest, match="Inference-Header-Content-Length"):
        await read_body(_receiver(data), headers, LIMITS)


@pytest.mark.parametrize(
    ("doc", "depth"),
    [
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [[1, 2], {"b": [3]}]}', 4),
        (b'["[[[[", "\\"[[[", {"k]]]": []}]', 3),
        (b'["\\\\", [[]]]', 3),
    ],
)
def test_json_depth_ignores_brackets_in_strings(doc: bytes, depth: int) -> None:
    orjson.loads(doc)
    assert json_depth(doc) == depth


def test_deep_nesting_is_refused_and_shallow_accepted() -> None:
    assert parse_json(b'{"a": [[[1]]]}', 5) == {"a": [[[1]]]}
    with pytest.raises(BadRequest, match="depth 7 exceeds the limit of 5"):
        parse_json(b"[" * 7 + b"]" * 7, 5)
    many_flat = orjson.dumps([[i] for i in range(100)])
    assert len(parse_json(many_flat, 5)) == 100


@pytest.mark.parametrize("doc", [b"", b"{", b"[1, 2", b'{"a": NaN}', b"[1e999]"])
def test_malformed_json_is_a_bad_request(doc: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_json(doc, 64)
