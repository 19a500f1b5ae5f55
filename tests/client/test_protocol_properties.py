"""Property tests: no key or value can change a request or add a request line."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from storages_mogile.client import Client
from storages_mogile.client.protocol import (
    ENCODING,
    ERRORS,
    Request,
    decode_reply,
    decode_request,
    encode_ok,
    encode_request,
    quote,
)

from .fakes import Answer, ScriptedTracker

# Characters that would split a request if sent raw, mixed into any text.
_DANGEROUS = st.sampled_from(["\r", "\n", "\0", "&", "=", "%", "+", " ", "\t", "%2", "%zz"])


def _from_bytes(raw: bytes) -> str:
    """Raw bytes as a key: surrogate escapes for what is not UTF-8."""
    return raw.decode(ENCODING, ERRORS)


# Keys are joined at the byte level so every generated key is the canonical
# text form of its bytes (two escaped bytes can form a valid UTF-8 sequence).
keys = st.lists(st.one_of(st.text(), st.binary().map(_from_bytes), _DANGEROUS), max_size=8).map(
    lambda parts: _from_bytes(b"".join(p.encode(ENCODING, ERRORS) for p in parts))
)


def _assert_one_line(line: bytes) -> None:
    assert line.endswith(b"\r\n")
    assert line.count(b"\n") == 1
    assert line.count(b"\r") == 1
    assert b"\0" not in line


@given(key=keys, domain=keys)
def test_any_key_round_trips_through_a_request(key: str, domain: str) -> None:
    line = encode_request("get_paths", {"domain": domain, "key": key, "noverify": 1})
    _assert_one_line(line)
    assert decode_request(line) == Request(
        "get_paths", {"domain": domain, "key": key, "noverify": "1"}
    )


@given(values=st.dictionaries(keys.filter(bool), keys, max_size=6))
def test_any_arguments_round_trip_through_a_reply(values: dict[str, str]) -> None:
    line = encode_ok(values)
    _assert_one_line(line)
    assert decode_reply(line).args == values


@given(value=keys)
def test_quoted_values_carry_no_separator(value: str) -> None:
    quoted = quote(value)
    assert not set(quoted) & set("&= \r\n\0")
    # Every "%" starts an upper-case escape, so none is left for the server to keep literally.
    assert all(
        re.fullmatch("[0-9A-F]{2}", quoted[i + 1 : i + 3]) for i, c in enumerate(quoted) if c == "%"
    )


@given(key=keys.filter(bool))
def test_client_sends_each_key_as_exactly_one_line(key: str) -> None:
    tracker = ScriptedTracker(
        lambda request, number: Answer(
            encode_ok(
                {
                    "fid": 1,
                    "key": request.args["key"],
                    "domain": "d",
                    "class": "c",
                    "length": 0,
                    "devcount": 1,
                }
            )
        )
    )
    client = Client("d", [tracker.address])
    try:
        info = client.file_info(key)
    finally:
        client.close()
        tracker.close()
    assert info.key == key
    [received] = tracker.received
    _assert_one_line(received.raw)
    assert received.request == Request("file_info", {"domain": "d", "key": key})
