"""Minimal HTTP/1.1 over asyncio streams for the lab's WSMan server (`wsman/server.py`).

Part of the lab. WinRM clients (pypsrp/requests) send `POST /wsman` with a Content-Length body on a
keep-alive connection; NTLM/Negotiate authentication and message encryption are bound to that TCP
connection, so the server owns the connection loop instead of a framework hiding it. Only what
those clients send is implemented: no chunked requests, no pipelining beyond sequential requests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

MAX_HEADER_LINE = 16 * 1024
MAX_HEADERS = 100
MAX_BODY = 64 * 1024 * 1024

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    500: "Internal Server Error",
}


class BadRequest(Exception):
    """The peer sent something that is not an HTTP/1.1 request we can read."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    version: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive name), or None."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    @property
    def keep_alive(self) -> bool:
        connection = (self.header("Connection") or "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    close: bool = False

    def with_headers(self, *extra: tuple[str, str]) -> Response:
        return Response(self.status, self.body, self.headers + tuple(extra), self.close)


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("header line too long") from exc
    if len(line) > MAX_HEADER_LINE:
        raise BadRequest("header line too long")
    return line.rstrip(b"\r\n")


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request; None when the peer closed the connection between requests."""
    try:
        first = await _read_line(reader)
    except asyncio.IncompleteReadError:
        return None
    parts = first.decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"bad request line {first[:80]!r}")
    headers = await _read_headers(reader)
    request = Request(parts[0], parts[1], parts[2], headers, b"")
    if request.header("Transfer-Encoding"):
        raise BadRequest("chunked requests are not supported")
    length = int(request.header("Content-Length") or "0")
    if length < 0 or length > MAX_BODY:
        raise BadRequest("bad Content-Length")
    body = await reader.readexactly(length) if length else b""
    return Request(request.method, request.path, request.version, headers, body)


async def _read_headers(reader: asyncio.StreamReader) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    while True:
        line = await _read_line(reader)
        if not line:
            return tuple(headers)
        if len(headers) >= MAX_HEADERS:
            raise BadRequest("too many headers")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise BadRequest("bad header line")
        headers.append((name.strip(), value.strip()))


def encode_response(response: Response, keep_alive: bool) -> bytes:
    """Serialise a response; Content-Length is always set so keep-alive works."""
    reason = _REASONS.get(response.status, "Unknown")
    lines = [f"HTTP/1.1 {response.status} {reason}", "Server: Microsoft-HTTPAPI/2.0"]
    lines += [f"{k}: {v}" for k, v in response.headers]
    lines.append(f"Content-Length: {len(response.body)}")
    lines.append("Connection: " + ("Keep-Alive" if keep_alive and not response.close else "close"))
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1") + response.body


def text_response(status: int, text: str = "", close: bool = False) -> Response:
    body = text.encode()
    headers = (("Content-Type", "text/plain; charset=utf-8"),) if body else ()
    return Response(status, body, headers, close)
