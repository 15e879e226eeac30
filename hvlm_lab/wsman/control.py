"""Control channel of a running lab: stats, reset and faults over loopback HTTP + JSON.

Part of the lab. `LabServer` serves it on its own port (`LabServer.control_url`) so that a lab
running in another process (`hvlm lab up`) can be inspected and steered:

    GET  /endpoints            {"HV01": {"host": "127.0.0.1", "port": 40001, "scheme": "https"}}
    GET  /stats                {"HV01": {...counters...}, ...}   (see HostStats.snapshot)
    GET  /stats/<host>         the counters of one host
    POST /reset                reset every host's counters        -> {"reset": ["HV01", ...]}
    POST /reset/<host>         reset one host's counters
    GET  /faults/<host>        the host's current FaultSpec as JSON
    POST /faults/<host>        body: FaultSpec JSON ({} = healthy) -> the spec now in force

Errors are JSON too: {"error": "..."} with 404 (unknown host or path) or 400 (bad body).
`LabControlClient` is the matching client (stdlib only).
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any, Protocol

from hvlm_lab.wsman.faults import FaultSpec
from hvlm_lab.wsman.httpserver import BadRequest, Request, Response, encode_response, read_request


class LabControl(Protocol):
    """What the control channel needs from the lab (implemented by LabServer, on its loop)."""

    def host_names(self) -> list[str]: ...

    def endpoints_json(self) -> dict[str, dict[str, Any]]: ...

    def stats(self, name: str | None = None) -> dict[str, Any]: ...

    def reset_stats(self, name: str | None = None) -> None: ...

    def fault(self, name: str) -> FaultSpec: ...

    async def apply_fault(self, name: str, spec: FaultSpec) -> None: ...


def _json(status: int, value: Any) -> Response:
    body = json.dumps(value, sort_keys=True).encode()
    return Response(status, body, (("Content-Type", "application/json"),))


class ControlServer:
    def __init__(self, lab: LabControl) -> None:
        self._lab = lab
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, bind: str, port: int) -> None:
        self._server = await asyncio.start_server(self._connection, bind, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while (request := await read_request(reader)) is not None:
                writer.write(encode_response(await self._route(request), request.keep_alive))
                await writer.drain()
                if not request.keep_alive:
                    break
        except (BadRequest, ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _route(self, request: Request) -> Response:
        parts = [p for p in request.path.split("?", 1)[0].split("/") if p]
        if not parts:
            return _json(404, {"error": "unknown path"})
        host = parts[1] if len(parts) > 1 else None
        if host is not None and host not in self._lab.host_names():
            return _json(404, {"error": f"unknown host {host!r}"})
        route = (request.method, parts[0], host is not None)
        try:
            return await self._dispatch(route, host, request.body)
        except (ValueError, TypeError) as exc:
            return _json(400, {"error": str(exc)})

    async def _dispatch(
        self, route: tuple[str, str, bool], host: str | None, body: bytes
    ) -> Response:
        if route[:2] == ("GET", "endpoints"):
            return _json(200, self._lab.endpoints_json())
        if route[:2] == ("GET", "stats"):
            return _json(200, self._lab.stats(host))
        if route[:2] == ("POST", "reset"):
            self._lab.reset_stats(host)
            return _json(200, {"reset": [host] if host else self._lab.host_names()})
        if route == ("GET", "faults", True) and host:
            return _json(200, self._lab.fault(host).to_json())
        if route == ("POST", "faults", True) and host:
            data = json.loads(body or b"{}")
            if not isinstance(data, dict):
                raise ValueError("a FaultSpec must be a JSON object")
            spec = FaultSpec.from_json(data)
            await self._lab.apply_fault(host, spec)
            return _json(200, spec.to_json())
        return _json(404, {"error": "unknown path"})


class LabControlClient:
    """Talks to a lab's control channel, e.g. from `hvlm lab stats` in another process."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        if not url.startswith("http://"):
            raise ValueError(f"a lab control URL is http://127.0.0.1:PORT, not {url!r}")
        self._url = url.rstrip("/")
        self._timeout = timeout
        # Loopback only: never through an HTTP proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else b""
        url = self._url + path  # http:// checked in __init__
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
            raise RuntimeError(f"lab control {method} {path}: {exc.code} {detail}") from exc

    def endpoints(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = self._call("GET", "/endpoints")
        return result

    def stats(self, host: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/stats/{host}" if host else "/stats")
        return result

    def reset(self, host: str | None = None) -> None:
        self._call("POST", f"/reset/{host}" if host else "/reset")

    def set_fault(self, host: str, spec: FaultSpec) -> FaultSpec:
        return FaultSpec.from_json(self._call("POST", f"/faults/{host}", spec.to_json()))

    def fault(self, host: str) -> FaultSpec:
        return FaultSpec.from_json(self._call("GET", f"/faults/{host}"))
