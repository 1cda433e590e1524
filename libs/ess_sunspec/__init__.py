"""SunSpec model definitions and pure register codecs, shared by the ESS
simulator and the collector so both read one source of truth. No I/O here."""

from ess_sunspec.chain import (
    BASE_ADDRESSES,
    DEFAULT_BASE_ADDRESS,
    END_MODEL,
    END_MODEL_ID,
    SUNS_MARKER,
    ModelHeader,
    build_image,
    walk_models,
)
from ess_sunspec.codec import (
    NOT_IMPLEMENTED,
    DecodedModel,
    PointValue,
    apply_scale,
    decode_model,
    decode_point,
    encode_model,
    encode_point,
    scale_factor_for,
    to_raw,
)
from ess_sunspec.model import GroupDef, ModelDef, Point, PointType, SunSpecError
from ess_sunspec.models import MODELS
from ess_sunspec.registers import (
    ByteOrder,
    DataType,
    WordOrder,
    decode_value,
    encode_value,
    register_count,
)

__all__ = [
    "BASE_ADDRESSES",
    "DEFAULT_BASE_ADDRESS",
    "END_MODEL",
    "END_MODEL_ID",
    "MODELS",
    "NOT_IMPLEMENTED",
    "SUNS_MARKER",
    "ByteOrder",
    "DataType",
    "DecodedModel",
    "GroupDef",
    "ModelDef",
    "ModelHeader",
    "Point",
    "PointType",
    "PointValue",
    "SunSpecError",
    "WordOrder",
    "apply_scale",
    "build_image",
    "decode_model",
    "decode_point",
    "decode_value",
    "encode_model",
    "encode_point",
    "encode_value",
    "register_count",
    "scale_factor_for",
    "to_raw",
    "walk_models",
]
