"""The four Modbus data spaces of one device at one moment."""

from __future__ import annotations

from dataclasses import dataclass, field

# Function code -> space name, for the read functions the simulator serves.
READ_FUNCTION_SPACES = {1: "coils", 2: "discrete", 3: "holding", 4: "input"}


@dataclass(frozen=True)
class RegisterSpaces:
    """Address -> value for each space; absent addresses are illegal."""

    coils: dict[int, bool] = field(default_factory=dict)
    discrete: dict[int, bool] = field(default_factory=dict)
    holding: dict[int, int] = field(default_factory=dict)
    input: dict[int, int] = field(default_factory=dict)

    def read(self, function_code: int, address: int, count: int) -> list[int] | list[bool] | None:
        """Values of a read request, or None if any address is not served."""
        space: dict[int, int] | dict[int, bool] = getattr(self, READ_FUNCTION_SPACES[function_code])
        try:
            return [space[a] for a in range(address, address + count)]
        except KeyError:
            return None
