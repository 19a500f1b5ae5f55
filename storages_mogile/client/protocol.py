"""The MogileFS tracker line protocol: encoding and decoding, no I/O.

Both sides of the wire use this module: the client to build requests and
read replies, the dev server to read requests and build replies. It follows
what a real mogilefsd 2.73 does (see tests/data/mogilefs/PROTOCOL.md in the
repository): arguments are ``name=value`` pairs joined by ``&``, every name and
value percent-encoded the way the server's ``eurl`` does it, one request line
answered by one reply line.

Keys are arbitrary bytes on a real tracker. Here they are ``str``: UTF-8 on
the wire, with bytes that are not valid UTF-8 carried as surrogate escapes so
that every key round-trips exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ENCODING = "utf-8"
ERRORS = "surrogateescape"
EOL = b"\r\n"

# Bytes the server's eurl leaves alone; space becomes "+", the rest %XX.
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_,-./\\:")
_COMMAND = re.compile(r"[A-Za-z0-9_]+")
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


class ProtocolError(ValueError):
    """A line that is not valid in the tracker protocol."""


def quote(value: str | bytes | int) -> str:
    """Percent-encode one name or value exactly as the tracker's ``eurl`` does.

    The result never contains ``&``, ``=``, ``%`` (unescaped), CR, LF, NUL
    or a space, so no value can split an argument or add a request line.
    """
    if isinstance(value, int):
        value = str(value)
    raw = value if isinstance(value, bytes) else value.encode(ENCODING, ERRORS)
    out = []
    for byte in raw:
        if byte in _SAFE:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def unquote(text: str | bytes) -> str:
    """Decode one name or value: ``+`` is a space, ``%XX`` (either case) a byte.

    A ``%`` not followed by two hex digits stays literal, as on the server.
    """
    raw = text if isinstance(text, bytes) else text.encode(ENCODING, ERRORS)
    raw = raw.replace(b"+", b" ")
    raw = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)
    return raw.decode(ENCODING, ERRORS)


def encode_args(args: dict[str, str | bytes | int | None]) -> str:
    """Encode arguments as ``name=value&...``; ``None`` values are left out."""
    return "&".join(
        f"{quote(name)}={quote(value)}" for name, value in args.items() if value is not None
    )


def decode_args(text: str | bytes) -> dict[str, str]:
    """Decode ``name=value&...`` the way the server's ``decode_url_args`` does.

    Pairs that are empty or ``"0"`` (false in Perl) are skipped; a value ends
    at a second unencoded ``=``; a repeated name appends its value to the
    earlier one, with a NUL in between unless the earlier value is false in
    Perl (``""`` or ``"0"``): ``a=&a=x`` gives ``x``, ``a=0&a=x`` gives
    ``0x``, as the server's ``$ret->{$name} .= $ret->{$name} ? "\0$value" :
    $value`` does.
    """
    raw = text if isinstance(text, bytes) else text.encode(ENCODING, ERRORS)
    args: dict[str, str] = {}
    for pair in raw.split(b"&"):
        if pair in (b"", b"0"):
            continue
        parts = pair.split(b"=")
        name = unquote(parts[0])
        value = unquote(parts[1]) if len(parts) > 1 else ""
        previous = args.get(name, "")
        separator = "\0" if previous not in ("", "0") else ""
        args[name] = f"{previous}{separator}{value}"
    return args


def encode_request(command: str, args: dict[str, str | bytes | int | None] | None = None) -> bytes:
    """Build one request line, CRLF included."""
    if not _COMMAND.fullmatch(command):
        raise ProtocolError(
            f"invalid tracker command name {command!r}: use letters, digits and '_'"
        )
    return f"{command} {encode_args(args or {})}".encode(ENCODING, ERRORS) + EOL


@dataclass(frozen=True)
class Request:
    """A decoded request line; ``command`` is lower-cased as the server does."""

    command: str
    args: dict[str, str] = field(default_factory=dict)


def decode_request(line: bytes) -> Request | None:
    """Decode a request line as the server does; ``None`` for an empty line.

    Like mogilefsd, the command is the leading word and the arguments are
    whatever follows it after optional white space. A line that does not start with a command word gives the command ``""``,
    which the server answers as an unknown command.
    """
    line = line.rstrip(b"\r\n").lstrip()
    if not line:
        return None
    match = re.match(rb"([A-Za-z0-9_]+)\s*(.*)", line, re.DOTALL)
    if not match:
        return Request("")
    command = match.group(1).decode("ascii").lower()
    return Request(command, decode_args(match.group(2) or b""))


@dataclass(frozen=True)
class Reply:
    """A decoded reply line: ``OK`` with arguments, or ``ERR`` with a code."""

    ok: bool
    args: dict[str, str] = field(default_factory=dict)
    code: str = ""
    message: str = ""


def encode_ok(args: dict[str, str | bytes | int | None] | None = None) -> bytes:
    """Build an ``OK`` reply line; with no arguments it is ``"OK "``."""
    return f"OK {encode_args(args or {})}".encode(ENCODING, ERRORS) + EOL


def encode_err(code: str, message: str | None = None) -> bytes:
    """Build an ``ERR`` reply line; with no message the text is the code."""
    return f"ERR {code} {quote(message or code)}".encode(ENCODING, ERRORS) + EOL


def decode_reply(line: bytes) -> Reply:
    """Decode one reply line; raises ProtocolError for anything else."""
    text = line.rstrip(b"\r\n")
    if text.startswith(b"OK ") or text == b"OK":
        return Reply(True, decode_args(text[3:]))
    if text.startswith(b"ERR "):
        code, _, message = text[4:].partition(b" ")
        return Reply(False, code=code.decode(ENCODING, ERRORS), message=unquote(message))
    raise ProtocolError(f"unexpected tracker reply {line[:200]!r}")


def numbered(args: dict[str, str], count: str, item: str) -> list[str]:
    """The numbered values of a reply as a list, in index order.

    ``numbered(args, "paths", "path{}")`` gives ``[path1, path2, ...]``;
    ``item`` is a format string taking the 1-based index. A missing item
    (a reply that announces more than it carries) is a ProtocolError.
    """
    try:
        total = int(args.get(count) or 0)
        return [args[item.format(index)] for index in range(1, total + 1)]
    except (KeyError, ValueError) as exc:
        raise ProtocolError(f"reply announces {count}={args.get(count)!r} but lacks {exc}") from exc


def domain_classes(reply: dict[str, str]) -> dict[str, dict[str, dict[str, str]]]:
    """A ``get_domains`` reply as ``{domain: {class: {field: value}}}``.

    The fields are the tracker's: ``mindevcount``, ``replpolicy`` and
    ``hashtype`` (``NONE`` or ``MD5``), as text.
    """
    domains = {}
    for index, name in enumerate(numbered(reply, "domains", "domain{}"), start=1):
        prefix = f"domain{index}class"
        classes = {}
        for number, cls in enumerate(numbered(reply, f"domain{index}classes", prefix + "{}name")):
            fields = f"{prefix}{number + 1}"
            classes[cls] = {
                field: reply.get(f"{fields}{field}", "")
                for field in ("mindevcount", "replpolicy", "hashtype")
            }
        domains[name] = classes
    return domains
