"""SunSpec devices: discover the model chain, then read and decode its models.

Discovery looks for "SunS" at the configured base address (else 40000, 0,
50000), hops from model header to model header reading each model, and hands
the image to `ess_sunspec.walk_models`. The layout it returns lists where the
models the device's table needs sit; each poll reads those (fixed blocks, plus
repeating groups where a field needs them) and decodes them with
`ess_sunspec`'s point codec, sentinels included.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from ess_collector.errors import DiscoveryError, ExceptionReplyError
from ess_collector.inventory import MAX_EXTRAS_PER_DEVICE
from ess_collector.planning import RegisterImage, Space, Span
from ess_collector.sunspec_blocks import decode_model_fast
from ess_collector.sunspec_fields import (
    FIELD_SOURCES,
    MODELS_BY_TABLE,
    MODELS_READ_WITH_GROUPS,
    PointSource,
    mapped_points,
)
from ess_collector.values import DecodedValues, is_integer_field
from ess_common.model import Quality, Table
from ess_sunspec import (
    BASE_ADDRESSES,
    END_MODEL_ID,
    MODELS,
    SUNS_MARKER,
    DecodedModel,
    ModelDef,
    Point,
    PointType,
    PointValue,
    SunSpecError,
    walk_models,
)

log = logging.getLogger(__name__)

ReadHolding = Callable[[int, int], Awaitable[list[int]]]  # (address, count) -> registers
MAX_IMAGE_REGISTERS = 8192  # a chain longer than this is not a device we understand
_CHUNK = 125
_SKIPPED_TYPES = frozenset({PointType.PAD, PointType.SUNSSF})


@dataclass(frozen=True, slots=True)
class ModelLocation:
    model: ModelDef
    address: int  # of the model's ID register
    length: int  # L, as the device reports it
    with_groups: bool

    @property
    def span(self) -> Span:
        """Everything of the model a poll reads: fixed block, groups if needed."""
        count = 2 + self.length if self.with_groups else self.model.fixed_length
        return Span(Space.HOLDING, self.address, count)

    def point_spans(self) -> list[Span]:
        spans = [Span(Space.HOLDING, self.address + p.offset, p.size) for p in self.model.points]
        if self.with_groups and self.model.group is not None:
            size = self.model.group.length
            first = self.address + self.model.fixed_length
            spans += [
                Span(Space.HOLDING, address, size)
                for address in range(first, self.address + 2 + self.length, size)
            ]
        return spans


@dataclass(frozen=True, slots=True)
class SunSpecLayout:
    base: int
    chain: tuple[int, ...]  # every model id of the chain, for logs and health
    models: tuple[ModelLocation, ...]  # the ones this device's table reads

    @property
    def model_ids(self) -> frozenset[int]:
        return frozenset(location.model.model_id for location in self.models)

    def spans(self) -> list[Span]:
        """Spans to plan reads from: one per point, so no read splits a point."""
        return [span for location in self.models for span in location.point_spans()]


async def discover(read: ReadHolding, table: Table, base: int | None = None) -> SunSpecLayout:
    """Walk the device's model chain; DiscoveryError if it is not a usable SunSpec device."""
    for candidate in (base,) if base is not None else BASE_ADDRESSES:
        try:
            marker = await read(candidate, 2)
        except ExceptionReplyError:
            continue  # nothing mapped there: try the next base
        if tuple(marker) == SUNS_MARKER:
            image = await _read_chain(read, candidate)
            return layout_from_image(candidate, image, table)
    raise DiscoveryError("no SunS marker at " + ", ".join(str(b) for b in BASE_ADDRESSES))


async def _read_chain(read: ReadHolding, base: int) -> list[int]:
    image = list(SUNS_MARKER)
    while True:
        model_id, length = await read(base + len(image), 2)
        image += [model_id, length]
        if model_id == END_MODEL_ID:
            return image
        if len(image) + length > MAX_IMAGE_REGISTERS or base + len(image) + length > 0x10000:
            raise DiscoveryError(f"model chain from {base} longer than {MAX_IMAGE_REGISTERS}")
        body_start = base + len(image)
        for offset in range(0, length, _CHUNK):
            image += await read(body_start + offset, min(_CHUNK, length - offset))


def layout_from_image(base: int, image: Sequence[int], table: Table) -> SunSpecLayout:
    """Where the models `table` needs sit in a walked image."""
    try:
        headers = walk_models(image)
    except SunSpecError as exc:
        raise DiscoveryError(str(exc)) from None
    wanted = MODELS_BY_TABLE[table]
    locations: list[ModelLocation] = []
    for header in headers:
        model = MODELS.get(header.model_id)
        if model is None or header.model_id not in wanted:
            continue
        if any(loc.model.model_id == header.model_id for loc in locations):
            continue  # a second instance of a model: the first one speaks for the device
        if header.length + 2 < model.fixed_length:
            log.warning("model %d at %d is shorter than its fixed block", model.model_id, base)
            continue
        with_groups = model.group is not None and model.model_id in MODELS_READ_WITH_GROUPS
        locations.append(ModelLocation(model, base + header.offset, header.length, with_groups))
    if not locations:
        found = ", ".join(str(h.model_id) for h in headers) or "none"
        raise DiscoveryError(f"no {table} model in the chain (models: {found})")
    chain = tuple(h.model_id for h in headers)
    return SunSpecLayout(base=base, chain=chain, models=tuple(locations))


@dataclass(frozen=True, slots=True)
class _FieldPlan:
    name: str
    source: PointSource
    point: Point | None  # None: a mean over the repeating groups
    integer: bool


@dataclass(frozen=True, slots=True)
class _ModelPlan:
    """What to decode of one model for one table, worked out once."""

    fields: tuple[_FieldPlan, ...]
    # the hot loop's view of `fields`: (field, point, its scale factor, integer, mask)
    flat_fields: tuple[tuple[str, str, str | None, bool, int | None], ...]
    group_means: tuple[_FieldPlan, ...]  # fields averaged over the repeating groups
    extras: tuple[tuple[str, str, str | None], ...]  # (key, point, its scale factor)


@functools.cache
def _model_plan(table: Table, model_id: int) -> _ModelPlan:
    # Keyed by id: hashing a ModelDef would hash every one of its points on each call.
    model = MODELS[model_id]
    taken = mapped_points(table, model.model_id)
    fields = tuple(
        _FieldPlan(
            name,
            source,
            None if source.group_mean else model.point(source.point),
            is_integer_field(table, name),
        )
        for name, source in FIELD_SOURCES[table].items()
        if source.model_id == model.model_id
    )
    flat = tuple(
        (f.name, f.point.name, f.point.sf, f.integer, f.source.mask)
        for f in fields
        if f.point is not None
    )
    extras = tuple(
        (f"{model.model_id}.{point.name}", point.name, point.sf)
        for point in model.points[2:]  # after ID and L
        if point.type not in _SKIPPED_TYPES and point.name not in taken
    )
    return _ModelPlan(fields, flat, tuple(f for f in fields if f.point is None), extras)


def decode_device(table: Table, layout: SunSpecLayout, image: RegisterImage) -> DecodedValues:
    """Fields and extras of one poll of a SunSpec device."""
    decoded = DecodedValues()
    read: dict[int, tuple[_ModelPlan, DecodedModel]] = {}
    for location in layout.models:
        registers = image.get(location.span)
        if registers is None:
            decoded.quality |= Quality.PARTIAL
            continue
        plan = _model_plan(table, location.model.model_id)
        model = decode_model_fast(location.model, registers, location.with_groups)
        read[location.model.model_id] = (plan, model)
    if len(read) < len(MODELS_BY_TABLE[table]):
        for name, source in FIELD_SOURCES[table].items():
            if source.model_id not in read and source.model_id not in layout.model_ids:
                decoded.set_field(name, None, Quality.NOT_IMPLEMENTED)  # the device lacks it
            elif source.model_id not in read:
                decoded.set_field(name, None)  # its read failed: PARTIAL says so
    values = decoded.values
    flags = Quality.GOOD
    for plan, model in read.values():
        flags |= _fields(plan, model.fixed, values)
        for field_plan in plan.group_means:
            value, flag = _group_mean(model, field_plan.source.point)
            decoded.set_field(field_plan.name, value, flag)
    decoded.quality |= flags
    decoded.extras = _extras(read.values())
    return decoded


def _fields(
    plan: _ModelPlan, fixed: dict[str, PointValue | None], values: dict[str, float | int | None]
) -> Quality:
    """The fixed-block fields of one model into `values` (the hot loop, inlined:
    sentinels are None, integers masked, floats scaled as `apply_scale` does)."""
    flags = 0
    for name, point, sf, integer, mask in plan.flat_fields:
        raw = fixed[point]
        if raw is None or isinstance(raw, str):
            values[name] = None
            flags |= Quality.NOT_IMPLEMENTED
        elif integer:
            values[name] = int(raw) & mask if mask is not None else int(raw)
        else:
            exponent = 0 if sf is None else fixed[sf]
            if exponent is None or isinstance(exponent, str):
                values[name] = None
                flags |= Quality.SCALE_FACTOR_INVALID
            else:
                values[name] = _scale(raw, int(exponent))
    return Quality(flags)


def _scale(raw: int | float, exponent: int) -> float:
    # Divide for negative exponents so 3328 * 10**-3 reads 3.328 (as apply_scale).
    return float(raw) / 10.0**-exponent if exponent < 0 else float(raw) * 10.0**exponent


def _group_mean(model: DecodedModel, point: str) -> tuple[float | None, Quality]:
    values = [model.scaled(point, index) for index in range(len(model.groups))]
    numbers = [v for v in values if v is not None and math.isfinite(v)]
    if not numbers:
        return None, Quality.NOT_IMPLEMENTED
    return sum(numbers) / len(numbers), Quality.GOOD


def _extras(
    read: Iterable[tuple[_ModelPlan, DecodedModel]],
) -> dict[str, float | int | str | bool | None]:
    extras: dict[str, float | int | str | bool | None] = {}
    for plan, model in read:
        fixed = model.fixed
        for key, point, sf in plan.extras:
            value = fixed[point]
            if value is None:
                continue
            if sf is not None:
                exponent = fixed[sf]
                if exponent is None or isinstance(exponent, str) or isinstance(value, str):
                    continue
                value = _scale(value, int(exponent))
            extras[key] = value
            if len(extras) == MAX_EXTRAS_PER_DEVICE:
                return extras
    return extras
