"""The SunSpec register map around the models: marker, model chain, end.

A device starts with "SunS" at a well-known base address, then models follow
one after another (ID, L, body), and an end model (0xFFFF, 0) closes the chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ess_sunspec.model import SunSpecError

SUNS_MARKER: tuple[int, int] = (0x5375, 0x6E53)  # "SunS"
BASE_ADDRESSES: tuple[int, ...] = (40000, 0, 50000)  # where scanners look, in order
DEFAULT_BASE_ADDRESS = 40000
END_MODEL_ID = 0xFFFF
END_MODEL: tuple[int, int] = (END_MODEL_ID, 0)


@dataclass(frozen=True, slots=True)
class ModelHeader:
    """Where one model sits in a register image."""

    model_id: int
    offset: int  # of its ID register, from the image start (the "S" of SunS)
    length: int  # L: registers after ID and L

    @property
    def end(self) -> int:
        return self.offset + 2 + self.length


def build_image(models: Sequence[Sequence[int]]) -> list[int]:
    """Marker, the encoded models in order, end model."""
    image = list(SUNS_MARKER)
    for registers in models:
        image.extend(registers)
    image.extend(END_MODEL)
    return image


def walk_models(image: Sequence[int]) -> list[ModelHeader]:
    """Model headers of an image that starts at the marker, up to the end model."""
    if tuple(image[:2]) != SUNS_MARKER:
        raise SunSpecError("no SunS marker at the image start")
    headers: list[ModelHeader] = []
    offset = 2
    while True:
        if offset + 2 > len(image):
            raise SunSpecError(f"model chain runs past the image at offset {offset}")
        model_id, length = image[offset], image[offset + 1]
        if model_id == END_MODEL_ID:
            return headers
        header = ModelHeader(model_id=model_id, offset=offset, length=length)
        if header.end > len(image):
            raise SunSpecError(f"model {model_id} at offset {offset} runs past the image")
        headers.append(header)
        offset = header.end
