"""The collector's errors. Classes carry behaviour as attributes, so callers
branch on meaning (`connection_broken`, `device_silent`) rather than on type.
`reason` is a short bounded code used as a metric label."""

from __future__ import annotations

from ess_common.settings import ConfigError

# Modbus exception codes by name; any other code is reported as "exception_other".
EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal_function",
    2: "illegal_address",
    3: "illegal_value",
    4: "device_failure",
    5: "acknowledge",
    6: "busy",
    8: "memory_parity",
    10: "gateway_path",
    11: "gateway_no_response",
}


class ModbusError(Exception):
    """A request that did not produce values."""

    reason = "error"
    connection_broken = False  # the TCP connection is unusable: reconnect
    device_silent = False  # the device did not answer at all: back off before asking again


class RequestTimeoutError(ModbusError):
    reason = "timeout"
    device_silent = True


class ConnectionLostError(ModbusError):
    reason = "connection"
    connection_broken = True


class NotConnectedError(ModbusError):
    reason = "not_connected"
    connection_broken = True


class BrokenFrameError(ModbusError):
    """The byte stream lost its framing; nothing after this can be trusted."""

    reason = "bad_frame"
    connection_broken = True


class MalformedReplyError(ModbusError):
    """A well-framed reply that does not answer the request (bad length, function, unit)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class ExceptionReplyError(ModbusError):
    """The device answered with a Modbus exception."""

    def __init__(self, code: int) -> None:
        name = EXCEPTION_NAMES.get(code, "other")
        super().__init__(f"exception {code} ({name})")
        self.code = code
        self.reason = f"exception_{name}"


class DiscoveryError(ModbusError):
    """A SunSpec device whose model chain could not be walked."""

    reason = "discovery"


class UnplannableError(ModbusError):
    """A device whose points no sequence of reads can fetch under the read limit."""

    reason = "plan"


class UndecodableError(ModbusError):
    """Registers that do not decode (e.g. a SunSpec model whose length changed)."""

    reason = "decode"


class InventoryError(ConfigError):
    """The inventory file cannot be used; the message names file, line and reason."""
