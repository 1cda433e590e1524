"""Run-time control over HTTP on loopback (stdlib asyncio, JSON bodies).

  GET    /healthz             -> {"status": "ok"}
  GET    /devices             -> every device with address and current faults
  GET    /inventory           -> the inventory (JSON form of the YAML one)
  GET    /faults              -> active faults by target
  POST   /faults/{target}     -> replace the target's faults with the JSON body
  DELETE /faults/{target}     -> clear the target's faults
  DELETE /faults              -> clear every fault
A target is a device id ("site1/bank1/rack3") or a site id ("site1").
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote

from pydantic import ValidationError

from ess_simulator.faults import FaultSpec, UnknownTargetError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
REQUEST_TIMEOUT_S = 10.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


class ControlApi(Protocol):
    def devices(self) -> list[dict[str, Any]]: ...
    def inventory(self) -> dict[str, Any]: ...
    def faults(self) -> dict[str, FaultSpec]: ...
    def set_fault(self, target: str, spec: FaultSpec) -> FaultSpec: ...
    def clear_fault(self, target: str) -> None: ...
    def clear_faults(self) -> None: ...


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _faults_json(faults: dict[str, FaultSpec]) -> dict[str, Any]:
    return {target: spec.model_dump() for target, spec in sorted(faults.items())}


def route(api: ControlApi, method: str, path: str, body: bytes) -> tuple[int, Any]:
    """Status and JSON payload for one request; raises HttpError."""
    path = path.split("?", 1)[0].rstrip("/") or "/"
    reads: dict[str, Callable[[], Any]] = {
        "/healthz": lambda: {"status": "ok"},
        "/devices": api.devices,
        "/inventory": api.inventory,
        "/faults": lambda: _faults_json(api.faults()),
    }
    if method == "GET" and path in reads:
        return 200, reads[path]()
    if path == "/faults":
        if method == "DELETE":
            api.clear_faults()
            return 200, {}
        raise HttpError(405, f"{method} not allowed on /faults")
    if not path.startswith("/faults/"):
        raise HttpError(404, f"no route {path}")
    target = unquote(path.removeprefix("/faults/"))
    try:
        if method == "POST":
            spec = FaultSpec.model_validate(json.loads(body or b"{}"))
            return 200, {"target": target, "faults": api.set_fault(target, spec).model_dump()}
        if method == "DELETE":
            api.clear_fault(target)
            return 200, {"target": target, "faults": FaultSpec().model_dump()}
    except UnknownTargetError as exc:
        raise HttpError(404, f"unknown device or site {target!r}") from exc
    except (ValueError, ValidationError) as exc:
        raise HttpError(400, f"bad fault body: {exc}") from exc
    raise HttpError(405, f"{method} not allowed on /faults/{{target}}")


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    request_line = (await reader.readline()).decode("latin-1").strip()
    parts = request_line.split()
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    length = 0
    while line := (await reader.readline()).decode("latin-1").strip():
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip() or 0)
    if not 0 <= length <= MAX_BODY_BYTES:
        raise HttpError(400, "body too large")
    body = await reader.readexactly(length) if length else b""
    return parts[0].upper(), parts[1], body


class ControlServer:
    """Small HTTP/1.1 server, one request per connection."""

    def __init__(self, api: ControlApi, host: str, port: int) -> None:
        self._api = api
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("control server is not running")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                method, path, body = await _read_request(reader)
                status, payload = route(self._api, method, path, body)
        except HttpError as exc:
            status, payload = exc.status, {"error": str(exc)}
        except (TimeoutError, asyncio.IncompleteReadError, ValueError, ConnectionError):
            writer.close()
            return
        data = json.dumps(payload).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n"
        )
        try:
            writer.write(head.encode() + data)
            await writer.drain()
        except ConnectionError:
            log.debug("control client went away before the answer")
        finally:
            writer.close()
