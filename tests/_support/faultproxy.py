"""A fault-injecting HTTP proxy for tests: 127.0.0.1, a free port, in front of moto.

Point a client's endpoint (``AWS_ENDPOINT_URL``) at ``proxy.url`` instead of moto's:
every request is forwarded to moto unchanged, except those a ``Fault`` picks, which are
answered the way AWS answers when it throttles (S3 ``503 SlowDown``, DynamoDB and SNS
``400 ThrottlingException`` / ``Throttling``, SQS ``400 RequestThrottled``), fails
(``500 InternalError``; SQS ``500 InternalFailure``), or are delayed before being
forwarded. Requests are told apart by operation (``CopyObject``,
``DeleteObject``, ``BatchWriteItem``, ``Publish``...), and a fault picks the first
``times`` matching requests (counting) or a ``rate`` of them (a seeded random draw per
request), so that a test sees the same faults every run.

    with FaultProxy(moto_url) as proxy:
        proxy.add(Fault("DeleteObject", "5xx", times=100))
        ...
        assert proxy.injected["DeleteObject"] == ...

moto's SQS is not thread-safe: two concurrent ``ReceiveMessage`` calls can hand out one
message twice, two concurrent deletes can undo each other. ``serialize_sqs=True`` makes
the proxy forward one SQS request at a time; a long poll (``WaitTimeSeconds`` > 0) is
played as short polls under that lock with the waits between them outside it (and it
ends when its client hangs up, so that a cancelled poll takes no message), so that
concurrent consumers see SQS's behaviour, not moto's races.
"""

from __future__ import annotations

import http.client
import json
import random
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Optional
from urllib.parse import parse_qs, urlsplit

__all__ = ["Fault", "FaultProxy", "operation"]

_SQS_TARGET = "AmazonSQS."
#: the pause between two short polls of a long poll played by a serialising proxy
POLL_PAUSE = 0.02

_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade",
        "content-length"}


@dataclass
class Fault:
    """Which requests to spoil, and how.

    ``operation``: an AWS operation name (``None``: every request). ``kind``:
    ``"throttle"``, ``"5xx"`` or ``"delay"`` (forwarded after ``delay`` seconds).
    ``times``: the first so many matching requests; otherwise ``rate``: that fraction of
    them, drawn from the proxy's seeded generator. ``path``: only requests whose path
    contains it (an S3 key, say)."""

    operation: Optional[str]
    kind: str
    times: Optional[int] = None
    rate: float = 1.0
    delay: float = 0.0
    path: Optional[str] = None
    hits: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in ("throttle", "5xx", "delay"):
            raise ValueError(f"kind={self.kind!r}: 'throttle', '5xx' or 'delay'")


def operation(method: str, path: str, headers: dict[str, str], body: bytes) -> str:
    """The AWS operation of a request (JSON target, query ``Action``, or S3's REST form)."""
    target = headers.get("x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1]
    if method == "POST" and body and b"Action=" in body:
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    segments = [p for p in urlsplit(path).path.split("/") if p]
    if not segments:
        return "ListBuckets" if method == "GET" else method
    has_key = len(segments) >= 2
    if method == "PUT":
        if "x-amz-copy-source" in headers:
            return "CopyObject"
        return "PutObject" if has_key else "CreateBucket"
    names = {"GET": ("GetObject", "ListObjects"), "HEAD": ("HeadObject", "HeadBucket"),
             "DELETE": ("DeleteObject", "DeleteBucket"), "POST": ("PostObject", "PostBucket")}
    pair = names.get(method, (method, method))
    return pair[0] if has_key else pair[1]


def _error(headers: dict[str, str], query: bool,
           kind: str) -> tuple[int, dict[str, str], bytes]:
    """The response AWS gives when it throttles (``kind="throttle"``) or fails."""
    if headers.get("x-amz-target", "").startswith(_SQS_TARGET):  # SQS's JSON protocol
        code = "RequestThrottled" if kind == "throttle" else "InternalFailure"
        status = 400 if kind == "throttle" else 500
        fault = "Sender" if kind == "throttle" else "Receiver"
        body = json.dumps({"__type": f"com.amazonaws.sqs#{code}",
                           "message": "injected by the test proxy"}).encode()
        return status, {"Content-Type": "application/x-amz-json-1.0",
                        "x-amzn-query-error": f"{code};{fault}"}, body
    if "x-amz-target" in headers:  # JSON protocol (DynamoDB)
        code = "ThrottlingException" if kind == "throttle" else "InternalServerError"
        status = 400 if kind == "throttle" else 500
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                           "message": "injected by the test proxy"}).encode()
        return status, {"Content-Type": "application/x-amz-json-1.0"}, body
    if query:  # query protocol (SNS)
        code = "Throttling" if kind == "throttle" else "InternalFailure"
        status = 400 if kind == "throttle" else 500
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>"
                "injected by the test proxy</Message></Error><RequestId>fault</RequestId>"
                "</ErrorResponse>").encode()
        return status, {"Content-Type": "text/xml"}, body
    code = "SlowDown" if kind == "throttle" else "InternalError"  # S3
    status = 503 if kind == "throttle" else 500
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>'
            "injected by the test proxy</Message><RequestId>fault</RequestId></Error>"
            ).encode()
    return status, {"Content-Type": "application/xml"}, body


class FaultProxy:
    """The proxy; a context manager that serves on a thread while entered."""

    def __init__(self, upstream: str, *, seed: int = 0, serialize_sqs: bool = False) -> None:
        target = urlsplit(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.faults: list[Fault] = []
        self.seen: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.polling = 0  # long polls being played (serialize_sqs)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        # one SQS request at a time (moto's SQS is not thread-safe)
        self._sqs_lock: Optional[threading.Lock] = threading.Lock() if serialize_sqs else None
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self.url = ""

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def decide(self, op: str, path: str) -> Optional[Fault]:
        """The fault for this request, if any (counted and drawn under one lock, so the
        choice depends on the order of requests only)."""
        with self._lock:
            self.seen[op] += 1
            for fault in self.faults:
                if fault.operation is not None and fault.operation != op:
                    continue
                if fault.path is not None and fault.path not in path:
                    continue
                if fault.times is not None:
                    if fault.hits >= fault.times:
                        continue
                elif self._rng.random() >= fault.rate:
                    continue
                fault.hits += 1
                self.injected[op] += 1
                return fault
        return None

    def __enter__(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each answer waits ~40 ms for an ACK

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                length = self.headers.get("Content-Length")
                if length is not None:
                    return self.rfile.read(int(length))
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return b""

            def _handle(self) -> None:
                body = self._body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                op = operation(self.command, self.path, headers, body)
                fault = proxy.decide(op, self.path)
                if fault is not None and fault.kind != "delay":
                    query = self.command == "POST" and b"Action=" in body
                    status, extra, payload = _error(headers, query, fault.kind)
                    self._reply(status, list(extra.items()), payload)
                    return
                if fault is not None:
                    time.sleep(fault.delay)
                sqs_lock = proxy._sqs_lock
                answer: Optional[tuple[int, list[tuple[str, str]], bytes]]
                if sqs_lock is None or not headers.get("x-amz-target", "").startswith(
                        _SQS_TARGET):
                    answer = proxy.forward(self.command, self.path, list(self.headers.items()),
                                           body)
                elif op == "ReceiveMessage":
                    answer = self._long_poll(sqs_lock, body)
                    if answer is None:
                        return  # the client hung up: it takes nothing
                else:
                    with sqs_lock:
                        answer = proxy.forward(self.command, self.path,
                                               list(self.headers.items()), body)
                self._reply(*answer)

            def _long_poll(self, sqs_lock: threading.Lock, body: bytes
                           ) -> Optional[tuple[int, list[tuple[str, str]], bytes]]:
                """A ReceiveMessage as short polls under ``sqs_lock``, waiting outside it,
                until a message comes, the wait time ends or the client hangs up."""
                request = json.loads(body or b"{}")
                ends = time.monotonic() + float(request.get("WaitTimeSeconds") or 0)
                request["WaitTimeSeconds"] = 0
                short = json.dumps(request).encode()
                with proxy._lock:
                    proxy.polling += 1
                try:
                    while True:
                        if self._hung_up():
                            return None
                        with sqs_lock:
                            answer = proxy.forward(self.command, self.path,
                                                   list(self.headers.items()), short)
                        status, _, payload = answer
                        if status != 200 or json.loads(payload or b"{}").get("Messages") \
                                or time.monotonic() >= ends:
                            return answer
                        time.sleep(POLL_PAUSE)
                finally:
                    with proxy._lock:
                        proxy.polling -= 1

            def _hung_up(self) -> bool:
                readable, _, _ = select.select([self.connection], [], [], 0)
                if not readable:
                    return False
                try:
                    return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
                except OSError:
                    return True

            def _reply(self, status: int, headers: list[tuple[str, str]],
                       payload: bytes) -> None:
                try:
                    self.send_response(status)
                    for name, value in headers:
                        if name.lower() not in _HOP:
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client hung up (a cancelled call)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def forward(self, method: str, path: str, headers: list[tuple[str, str]],
                body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            sent = [(k, v) for k, v in headers if k.lower() not in _HOP]
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in sent:
                connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            payload = response.read()
            return response.status, response.getheaders(), payload
        finally:
            connection.close()

    def __exit__(self, kind: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
