"""Deterministic pseudo-random numbers keyed by (seed, thing, time).

Values must depend only on the seed, the device and the second asked for, never
on how often or in which order devices are read, so a stateless hash replaces
a stateful RNG. Python's hash() is salted per process, hence blake2b/splitmix.
"""

from __future__ import annotations

import hashlib

_MASK64 = (1 << 64) - 1
_TWO_POW_64 = float(1 << 64)


def stable_key(*parts: object) -> int:
    """A 64-bit key from any printable parts, equal in every process."""
    text = "\x1f".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def mix64(value: int) -> int:
    """splitmix64 finaliser: spreads every input bit over the output."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def uniform(key: int, *salts: int) -> float:
    """A number in [0, 1) fixed by the key and the salts."""
    value = key
    for salt in salts:
        value = mix64(value ^ (salt & _MASK64))
    return mix64(value) / _TWO_POW_64


def quarters(key: int, *salts: int) -> tuple[float, float, float, float]:
    """Four numbers in [0, 1) from one hash (16-bit resolution), for hot loops."""
    value = key
    for salt in salts:
        value = mix64(value ^ (salt & _MASK64))
    value = mix64(value)
    return (
        (value >> 48) / 65536.0,
        ((value >> 32) & 0xFFFF) / 65536.0,
        ((value >> 16) & 0xFFFF) / 65536.0,
        (value & 0xFFFF) / 65536.0,
    )


def symmetric(key: int, *salts: int) -> float:
    """A number in [-1, 1) fixed by the key and the salts."""
    return 2.0 * uniform(key, *salts) - 1.0
