"""Replaying the recorded mogilefsd exchanges (vectors.jsonl) against a DevCluster.

The recording was made on a real cluster: tracker 127.0.0.1:7001, node1
(dev1) at 127.0.0.1:7500, node2 (dev2) at 127.0.0.2:7510. The dev cluster
has the same topology on other ports, and it picks its own fids and
destination devices (both are the server's choice, random among equals).
So requests are rewritten into the dev cluster's terms before they are
sent, and replies are rewritten back into the recording's terms before
they are compared:

* fids: recorded fid <-> our fid, learned from ``create_open`` replies (and
  from the setup steps the recording did not log); the mapping must keep
  the order in which fids were handed out;
* devices: per fid, a bijection recorded devid <-> our devid, learned from
  the device(s) ``create_open`` offered;
* URLs: rebuilt from the translated fid and device, with the node's
  address;
* what is random on a real tracker too is compared order-free: reply
  argument order, the order of ``get_paths`` paths, of hosts, devices,
  domains and classes, of ``devids`` lists;
* values that cannot match are masked: timestamps, disk sizes, HTTP
  ``Date``/``Last-Modified``/``Server``, the stale ``error:`` tail of
  ``size_verify_error`` and the Perl ``@INC`` dump of ``invalid_replpolicy``.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from storages_mogile.client.protocol import Reply, decode_args, decode_reply, decode_request
from storages_mogile.devserver import DevCluster
from storages_mogile.devserver.layout import fid_path, parse_fid_path

# The recording (and PROTOCOL.md, which explains it) is test data of the repository.
VECTORS = Path(__file__).resolve().parents[1] / "data" / "mogilefs" / "vectors.jsonl"

# Recorded topology: devid -> node address; tracker address -> index.
RECORDED_NODES = {1: "127.0.0.1:7500", 2: "127.0.0.2:7510"}
RECORDED_TRACKERS = {"127.0.0.1:7001": 0, "127.0.0.1:7002": 1}

_RAW_URL = re.compile(r"http://[\d.]+:\d+/dev\d+/\d/\d{3}/\d{3}/\d{10}\.fid")
_ENCODED_URL = re.compile(r"http%3A%2F%2F[\d.]+%3A\d+%2Fdev\d+%2F\d%2F\d{3}%2F\d{3}%2F\d{10}\.fid")
_TIMESTAMP_FIELDS = re.compile(r"(replqueue|delqueue)_nexttry")


def load_records() -> list[dict[str, Any]]:
    """All recorded exchanges, by seq."""
    with VECTORS.open(encoding="utf-8") as handle:
        return sorted((json.loads(line) for line in handle), key=lambda record: record["seq"])


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def body_of(length: int) -> bytes:
    """Deterministic content for uploads the recording abbreviated or left out."""
    return bytes(index % 251 for index in range(length))


@dataclass
class StoredFile:
    """A file the recording stored without logging it (setup)."""

    key: str
    cls: str
    length: int
    fid: int  # the recorded fid
    devid: int = 1  # the recorded device of the uploaded copy
    copies: int = 1  # 2: wait for replication (device mapping is then the identity)


class Translation:
    """Recorded fids/devices/URLs <-> the dev cluster's."""

    def __init__(self, cluster: DevCluster) -> None:
        self.node_of_devid = {
            devid: node.address for node in cluster.nodes for devid in node.devids
        }
        self.devid_of_node = {
            node.address: devid for node in cluster.nodes for devid in node.devids
        }
        self.fids: dict[int, int] = {}
        self.devices: dict[int, dict[int, int]] = {}

    # -- learning ------------------------------------------------------------

    def learn(self, recorded_fid: int, our_fid: int, devices: list[tuple[int, int]]) -> None:
        """Record that our ``our_fid`` plays recorded ``recorded_fid``."""
        for known, ours in self.fids.items():
            if known != recorded_fid and (known < recorded_fid) != (ours < our_fid):
                raise AssertionError(
                    f"fid order differs: recorded {known} -> ours {ours}, but recorded {recorded_fid} -> ours {our_fid}"
                )
        self.fids[recorded_fid] = our_fid
        mapping = self.devices.setdefault(recorded_fid, {})
        mapping.update(devices)
        self._complete(mapping)

    def learn_identity(self, recorded_fid: int, our_fid: int) -> None:
        self.learn(recorded_fid, our_fid, [(devid, devid) for devid in RECORDED_NODES])

    def _complete(self, mapping: dict[int, int]) -> None:
        """With two devices, one known pair fixes the other."""
        ours = set(self.node_of_devid)
        if len(RECORDED_NODES) == len(ours) == 2 and len(mapping) == 1:
            ((recorded, our),) = mapping.items()
            mapping[(set(RECORDED_NODES) - {recorded}).pop()] = (ours - {our}).pop()

    # -- recorded -> ours ------------------------------------------------------

    def our_fid(self, fid: int) -> int:
        return self.fids.get(fid, fid)

    def our_devid(self, recorded_fid: int, devid: int) -> int:
        return self.devices.get(recorded_fid, {}).get(devid, devid)

    def our_url(self, url: str) -> str:
        parts = urlsplit(url)
        devid, fid = parse_fid_path(parts.path)
        ours = self.our_devid(fid, devid)
        return f"http://{self.node_of_devid[ours]}{fid_path(ours, self.our_fid(fid))}"

    def our_path(self, path: str) -> tuple[str, str | None]:
        """An HTTP path in our terms, and the node address it now belongs to."""
        parsed = parse_fid_path(path)
        if parsed is None or parsed[1] not in self.fids or parsed[0] not in RECORDED_NODES:
            return path, None
        devid, fid = parsed
        ours = self.our_devid(fid, devid)
        return fid_path(ours, self.our_fid(fid)), self.node_of_devid[ours]

    def request(self, line: str) -> str:
        """A recorded tracker request line, rewritten for the dev cluster."""
        match = re.search(r"(?:^|[ &])fid=(\d+)", line)
        recorded_fid = int(match.group(1)) if match else None
        line = _RAW_URL.sub(lambda m: self.our_url(m.group(0)), line)
        line = _ENCODED_URL.sub(lambda m: quote(self.our_url(unquote(m.group(0))), safe=""), line)
        line = re.sub(
            r"(^|[ &])(fid|from)=(\d+)",
            lambda m: f"{m.group(1)}{m.group(2)}={self.our_fid(int(m.group(3)))}",
            line,
        )
        if recorded_fid is not None:
            line = re.sub(
                r"(^|[ &])devid=(\d+)",
                lambda m: f"{m.group(1)}devid={self.our_devid(recorded_fid, int(m.group(2)))}",
                line,
            )
        return line

    # -- ours -> recorded ------------------------------------------------------

    def recorded_fid(self, fid: int) -> int:
        for recorded, ours in self.fids.items():
            if ours == fid:
                return recorded
        return fid

    def recorded_devid(self, recorded_fid: int | None, devid: int) -> int:
        for recorded, ours in self.devices.get(recorded_fid, {}).items():
            if ours == devid:
                return recorded
        return devid

    def recorded_url(self, url: str) -> str:
        parts = urlsplit(url)
        parsed = parse_fid_path(parts.path)
        if parsed is None:
            return url
        devid, fid = parsed
        recorded_fid = self.recorded_fid(fid)
        recorded = self.recorded_devid(recorded_fid, devid)
        return (
            f"http://{RECORDED_NODES.get(recorded, parts.netloc)}{fid_path(recorded, recorded_fid)}"
        )

    def recorded_devids(self, recorded_fid: int | None, devids: str) -> str:
        if not devids:
            return devids
        return ",".join(
            sorted(str(self.recorded_devid(recorded_fid, int(d))) for d in devids.split(","))
        )

    def reply(self, command: str, reply: Reply, recorded_fid: int | None) -> Reply:
        """Our decoded reply in the recording's terms."""
        if not reply.ok:
            text = re.sub(
                r"http://[\d.]+:\d+/dev\d+/[\d/]+\.fid",
                lambda m: self.recorded_url(m.group(0)),
                reply.message,
            )
            text = re.sub(
                r"dest (\d+)\. Valid devices were: ([\d,]+)",
                lambda m: (
                    f"dest {self.recorded_devid(recorded_fid, int(m.group(1)))}. Valid devices were: "
                    + self.recorded_devids(recorded_fid, m.group(2))
                ),
                text,
            )
            return Reply(False, code=reply.code, message=text)
        args = dict(reply.args)
        fid_field = args.get("fid") or args.get("fid_fid")
        context = (
            self.recorded_fid(int(fid_field)) if fid_field and fid_field.isdigit() else recorded_fid
        )
        translated: dict[str, str] = {}
        for name, value in args.items():
            if value.startswith("http://"):
                value = self.recorded_url(value)
            if re.fullmatch(r"fid|fid_fid|replqueue_fid|delqueue_fid|fid_\d+_fid", name):
                value = str(self.recorded_fid(int(value)))
            if name in ("devids", "tempfile_devids"):
                value = self.recorded_devids(context, value)
            if name == "devid" or re.fullmatch(r"devid_\d+", name):
                value = str(self.recorded_devid(context, int(value)))
            devpath = re.fullmatch(r"devpath_(\d+)", name)
            if devpath:
                name = f"devpath_{self.recorded_devid(context, int(devpath.group(1)))}"
            if command == "get_hosts" and re.fullmatch(r"host\d+_(hostip|http_port)", name):
                continue  # replaced below, by hostid
            translated[name] = value
        if command == "get_hosts":
            for key, hostid in [(k, v) for k, v in args.items() if k.endswith("_hostid")]:
                prefix = key[: -len("hostid")]
                address = RECORDED_NODES.get(int(hostid), "")
                translated[prefix + "hostip"], _, translated[prefix + "http_port"] = (
                    address.partition(":")
                )
        return Reply(True, translated)


# -- canonical forms ----------------------------------------------------------


def canonical_reply(command: str, reply: Reply) -> Any:
    """A reply with what is random or machine-specific taken out."""
    if not reply.ok:
        text = reply.message
        if reply.code == "size_verify_error":
            text = re.sub(r"; error: .*", "; error: <stale>", text, flags=re.DOTALL)
        if reply.code == "invalid_replpolicy":
            text = re.sub(r"(ReplicationPolicy::\w+): .*", r"\1: <detail>", text, flags=re.DOTALL)
        return ("ERR", reply.code, text)
    args = {name: value for name, value in reply.args.items()}
    for name in list(args):
        if _TIMESTAMP_FIELDS.fullmatch(name) and args[name].isdigit() and int(args[name]) > 10**9:
            args[name] = "<time>"
    if command == "get_paths":
        urls = sorted(value for name, value in args.items() if re.fullmatch(r"path\d+", name))
        return ("OK", args.get("paths"), urls)
    if command == "get_hosts":
        return ("OK", args.get("hosts"), grouped(args, r"host(\d+)_(\w+)", "hostid"))
    if command == "get_devices":
        devices = grouped(args, r"dev(\d+)_(\w+)", "devid")
        for fields in devices.values():
            for name in ("mb_total", "mb_used", "mb_free"):
                if fields.get(name, "").isdigit():
                    fields[name] = "<n>"
        return ("OK", args.get("devices"), devices)
    if command == "get_domains":
        return ("OK", args.get("domains"), domains_of(args))
    return ("OK", sorted(args.items()))


def grouped(args: dict[str, str], pattern: str, identity: str) -> dict[str, dict[str, str]]:
    """Numbered records (``host1_hostid``...) keyed by their id, not their index."""
    records: dict[str, dict[str, str]] = {}
    for name, value in args.items():
        match = re.fullmatch(pattern, name)
        if match:
            records.setdefault(match.group(1), {})[match.group(2)] = value
    return {fields.get(identity, index): fields for index, fields in records.items()}


def domains_of(args: dict[str, str]) -> dict[str, dict[str, tuple]]:
    result: dict[str, dict[str, tuple]] = {}
    for name, value in args.items():
        match = re.fullmatch(r"domain(\d+)", name)
        if match:
            number = match.group(1)
            count = int(args[f"domain{number}classes"])
            result[value] = {
                args[f"domain{number}class{index}name"]: tuple(
                    args[f"domain{number}class{index}{field}"]
                    for field in ("mindevcount", "replpolicy", "hashtype")
                )
                for index in range(1, count + 1)
            }
    return result


# -- HTTP ---------------------------------------------------------------------------


@dataclass
class HttpResponse:
    status: str
    headers: list[tuple[str, str]]
    body: bytes


def read_http_response(reader: Any, method: str) -> HttpResponse:
    """One response from a raw connection (bodies by Content-Length or EOF)."""
    status = reader.readline().decode("latin-1").rstrip("\r\n")
    headers = []
    while (line := reader.readline().decode("latin-1").rstrip("\r\n")) != "":
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    fields = {name.lower(): value for name, value in headers}
    code = status.split(" ")[1] if " " in status else ""
    if method == "HEAD" or code in ("204", "304"):
        body = b""
    elif "content-length" in fields:
        body = reader.read(int(fields["content-length"]))
    else:
        body = reader.read()
    return HttpResponse(status, headers, body)


def parse_recorded_http(text: str, methods: list[str]) -> list[HttpResponse]:
    """The recorded response text as responses (one per pipelined request)."""
    reader = io.BytesIO(encode(text))
    return [read_http_response(reader, method) for method in methods]


_MASKED_HEADERS = {"date": "<date>", "last-modified": "<date>", "server": "<server>"}


def canonical_http(response: HttpResponse, *, usage: bool = False) -> tuple:
    headers = []
    for name, value in response.headers:
        value = _MASKED_HEADERS.get(name.lower(), value)
        if usage and name.lower() == "content-length":
            value = "<n>"
        headers.append((name.lower(), value))
    body: Any = response.body
    if usage:
        body = [line.split(b":")[0] for line in body.splitlines()]
    return (response.status, sorted(headers), body)


@dataclass
class Outcome:
    """What a replayed record gave, in canonical form, beside the recorded one."""

    seq: int
    expected: Any
    actual: Any
    request: str = ""

    @property
    def matches(self) -> bool:
        return self.expected == self.actual


@dataclass
class TrackerLine:
    """A line-protocol connection to one tracker."""

    address: str
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        host, port = self.address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.reader = self.sock.makefile("rb")

    def ask(self, line: bytes) -> bytes:
        self.sock.sendall(line)
        return self.reader.readline()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def raw_exchange(address: str, data: bytes, quiet: float = 0.3) -> bytes:
    """Send bytes on a fresh connection; everything received until it goes quiet."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        sock.settimeout(quiet)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return received
            if not chunk:
                return received
            received += chunk


def poll(attempt: Callable[[], Outcome], step: Callable[[], None], tries: int = 20) -> Outcome:
    """Run ``step`` (the replication worker) and retry until the outcome matches."""
    outcome = attempt()
    for _ in range(tries):
        if outcome.matches:
            break
        step()
        time.sleep(0.05)
        outcome = attempt()
    return outcome


# -- the replayer -------------------------------------------------------------------

_REQUEST_LINE = re.compile(
    r"^(GET|HEAD|PUT|DELETE|POST|OPTIONS|MOVE) (\S+) (HTTP/1\.\d)\r$", re.MULTILINE
)
_ABBREVIATED_BODY = re.compile(r"<(\d+) bytes>$")
_LONG_KEY = re.compile(r"<(\d+) x 'L'>")


class Replayer:
    """Replays records against a cluster whose replication runs only when told.

    ``setup`` stores, before a seq, the files the recording stored without
    logging; ``polls`` are seqs recorded after waiting for replication or
    deletion: they are retried, running the worker in between, until they
    match (or give up).
    """

    def __init__(
        self, cluster: DevCluster, setup: dict[int, list[StoredFile]], polls: set[int]
    ) -> None:
        self.cluster = cluster
        self.translation = Translation(cluster)
        self.setup = setup
        self.polls = polls
        self.lines: dict[int, TrackerLine] = {}
        self.uploaded: set[int] = set()
        self.dates: dict[str, str] = {}
        self.bodies: dict[str, bytes] = {}

    def close(self) -> None:
        for line in self.lines.values():
            line.close()

    def tracker(self, record: dict[str, Any]) -> TrackerLine:
        index = RECORDED_TRACKERS[record.get("tracker", "127.0.0.1:7001")]
        if index not in self.lines:
            self.lines[index] = TrackerLine(self.cluster.trackers[index])
        return self.lines[index]

    def run_worker(self) -> None:
        self.cluster.replicator.run_once()

    # -- dispatch ------------------------------------------------------------

    def replay(self, record: dict[str, Any]) -> Outcome | None:
        """Replay one record; ``None`` if it holds no exchange (a measurement)."""
        for stored in self.setup.get(record["seq"], []):
            self.store(stored)
        if record.get("request") is None:
            return None
        if _LONG_KEY.search(record["request"]) or record["cmd"] == "create_close+get_paths":
            attempt = lambda: self.long_key(record)
        elif "target" in record:
            attempt = lambda: self.http(record)
        elif record.get("raw"):
            attempt = lambda: self.raw(record)
        else:
            attempt = lambda: self.line(record)
        if record["seq"] in self.polls:
            return poll(attempt, self.run_worker)
        return attempt()

    # -- tracker lines -----------------------------------------------------------

    def line(self, record: dict[str, Any]) -> Outcome:
        recorded_request = record["request"]
        command = decode_request(encode(recorded_request) + b"\r\n").command
        fid_match = re.search(r"(?:^|[ &])fid=(\d+)", recorded_request)
        recorded_fid = int(fid_match.group(1)) if fid_match else None
        line = self.translation.request(recorded_request)
        if (
            command == "create_close"
            and record["response"].startswith("OK")
            and recorded_fid not in self.uploaded
        ):
            self.upload_for_close(line, recorded_fid)
        eol = b"\n" if record.get("eol_sent") == "b'\\n'" else b"\r\n"
        raw_reply = self.tracker(record).ask(encode(line) + eol)
        reply = decode_reply(raw_reply)
        recorded = decode_reply(encode(record["response"]))
        if command == "create_open" and reply.ok and recorded.ok:
            self.learn_open(recorded, reply)
        actual = canonical_reply(command, self.translation.reply(command, reply, recorded_fid))
        expected = canonical_reply(command, recorded)
        return Outcome(record["seq"], (expected, True), (actual, raw_reply.endswith(b"\r\n")), line)

    def learn_open(self, recorded: Reply, ours: Reply) -> None:
        if "dev_count" in recorded.args:
            count = min(int(recorded.args["dev_count"]), int(ours.args["dev_count"]))
            pairs = [
                (int(recorded.args[f"devid_{i}"]), int(ours.args[f"devid_{i}"]))
                for i in range(1, count + 1)
            ]
        else:
            pairs = [(int(recorded.args["devid"]), int(ours.args["devid"]))]
        self.translation.learn(int(recorded.args["fid"]), int(ours.args["fid"]), pairs)

    def upload_for_close(self, line: str, recorded_fid: int | None) -> None:
        """PUT the file a recorded create_close reports but the recording did not log."""
        args = decode_args(line.partition(" ")[2])
        self.put(args["path"], body_of(int(args.get("size") or 0)))
        if recorded_fid is not None:
            self.uploaded.add(recorded_fid)

    @staticmethod
    def put(url: str, body: bytes) -> None:
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            connection.request("PUT", parts.path, body=body)
            response = connection.getresponse()
            response.read()
            assert response.status == 200, f"PUT {url} answered {response.status}"
        finally:
            connection.close()

    def ask(self, line: str) -> Reply:
        return decode_reply(self.tracker({}).ask(encode(line) + b"\r\n"))

    def store(self, stored: StoredFile) -> None:
        """Store a file the recording set up without logging it."""
        opened = self.ask(
            f"create_open domain=testdomain&key={quote(stored.key, safe='')}&class={stored.cls}"
        )
        assert opened.ok, opened
        fid, devid, path = int(opened.args["fid"]), int(opened.args["devid"]), opened.args["path"]
        if stored.copies == 2:
            self.translation.learn_identity(stored.fid, fid)
        else:
            self.translation.learn(stored.fid, fid, [(stored.devid, devid)])
        self.put(path, body_of(stored.length))
        closed = self.ask(
            f"create_close domain=testdomain&key={quote(stored.key, safe='')}&fid={fid}&devid={devid}"
            f"&path={quote(path, safe='')}&size={stored.length}"
        )
        assert closed.ok, closed
        if stored.copies == 2:
            for _ in range(20):
                self.run_worker()
                info = self.ask(f"file_info domain=testdomain&key={quote(stored.key, safe='')}")
                if info.args.get("devcount") == "2":
                    break
            else:
                raise AssertionError(f"setup file {stored.key} did not get its second copy")

    def long_key(self, record: dict[str, Any]) -> Outcome:
        """The abbreviated records: a key of N bytes through create_open (and on)."""
        length = record["key_length"]
        key = "L" * length
        opened = self.ask(f"create_open domain=testdomain&key={key}&class=thumb")
        parsed = record["parsed"]
        if "create_close" not in parsed:  # recorded on PostgreSQL: create_open alone
            expected = canonical_reply("create_open", parsed_reply(parsed))
            return Outcome(record["seq"], expected, canonical_reply("create_open", opened))
        expected = (
            parsed["create_close"]["status"],
            parsed["get_paths"]["status"],
            parsed["get_paths"]["args"].get("paths"),
        )
        if not opened.ok:
            return Outcome(record["seq"], expected, ("ERR", opened.code, opened.message))
        self.put(opened.args["path"], b"L")
        closed = self.ask(
            f"create_close domain=testdomain&key={key}&fid={opened.args['fid']}&devid={opened.args['devid']}"
            f"&path={quote(opened.args['path'], safe='')}&size=1"
        )
        paths = self.ask(f"get_paths domain=testdomain&key={key}")
        return Outcome(
            record["seq"],
            expected,
            ("OK" if closed.ok else "ERR", "OK" if paths.ok else "ERR", paths.args.get("paths")),
        )

    # -- raw tracker exchanges -------------------------------------------------------

    def raw(self, record: dict[str, Any]) -> Outcome:
        request = record["request"]
        address = self.cluster.trackers[RECORDED_TRACKERS[record.get("tracker", "127.0.0.1:7001")]]
        received = raw_exchange(address, encode(request))
        if request.startswith("!"):
            return Outcome(record["seq"], encode(record["response"]), received, request)
        commands = [decode_request(encode(line)) for line in request.split("\r\n")]
        commands = [command.command for command in commands if command is not None]
        expected = [
            canonical_reply(c, decode_reply(r))
            for c, r in zip(commands, encode(record["response"]).splitlines())
        ]
        actual = [
            canonical_reply(c, decode_reply(r)) for c, r in zip(commands, received.splitlines())
        ]
        return Outcome(
            record["seq"],
            (expected, record["response"].count("\r\n")),
            (actual, received.count(b"\r\n")),
            request,
        )

    # -- HTTP -------------------------------------------------------------------------

    def node_for(self, target: str) -> str:
        devid = next(devid for devid, address in RECORDED_NODES.items() if address == target)
        return self.translation.node_of_devid[devid]

    def http(self, record: dict[str, Any]) -> Outcome:
        target, text = record["target"], record["request"]
        if target.endswith(":7501"):
            return Outcome(
                record["seq"], record["response"], "the dev nodes have no side channel", text
            )
        node = self.node_for(target)
        paths = []

        def rewrite(match: re.Match[str]) -> str:
            nonlocal node
            path, owner = self.translation.our_path(match.group(2))
            node = owner or node
            paths.append((match.group(1), match.group(2)))
            return f"{match.group(1)} {path} {match.group(3)}\r"

        text = _REQUEST_LINE.sub(rewrite, text)
        text = text.replace(f"Host: {target}", f"Host: {node}")
        text = re.sub(
            r"If-Modified-Since: (.*)\r",
            lambda m: f"If-Modified-Since: {self.dates.get(m.group(1), m.group(1))}\r",
            text,
        )
        data = encode(text)
        abbreviated = _ABBREVIATED_BODY.search(text)
        if abbreviated:
            body = body_of(int(abbreviated.group(1)))
            self.bodies[paths[0][1]] = body
            data = encode(text[: abbreviated.start()]) + body
        for method, path in paths:
            parsed = parse_fid_path(path)
            if method == "PUT" and parsed:
                self.uploaded.add(parsed[1])
        methods = [method for method, _ in paths]
        host, port = node.rsplit(":", 1)
        with (
            socket.create_connection((host, int(port)), timeout=30) as sock,
            sock.makefile("rb") as reader,
        ):
            sock.sendall(data)
            ours = [read_http_response(reader, method) for method in methods]
        recorded = parse_recorded_http(record["response"], methods)
        usage = any(path.endswith("/usage") for _, path in paths)
        for (_, path), mine, theirs in zip(paths, ours, recorded):
            self.note_dates(theirs, mine)
            if theirs.body == b"<body>" and mine.body == self.bodies.get(path):
                mine.body = b"<body>"
        return Outcome(
            record["seq"],
            [canonical_http(response, usage=usage) for response in recorded],
            [canonical_http(response, usage=usage) for response in ours],
            text[:200],
        )

    def note_dates(self, recorded: HttpResponse, ours: HttpResponse) -> None:
        theirs = {name.lower(): value for name, value in recorded.headers}.get("last-modified")
        mine = {name.lower(): value for name, value in ours.headers}.get("last-modified")
        if theirs and mine:
            self.dates[theirs] = mine


def parsed_reply(parsed: dict[str, Any]) -> Reply:
    if parsed["status"] == "OK":
        return Reply(True, parsed.get("args", {}))
    return Reply(False, code=parsed["code"], message=parsed["message"])
