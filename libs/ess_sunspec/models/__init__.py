"""SunSpec model tables, one module per model, looked up by model id."""

from __future__ import annotations

from ess_sunspec.model import ModelDef
from ess_sunspec.models.battery_802 import BATTERY_802
from ess_sunspec.models.common_1 import COMMON_1
from ess_sunspec.models.der_ac_measurement_701 import DER_AC_MEASUREMENT_701
from ess_sunspec.models.der_dc_measurement_714 import DER_DC_MEASUREMENT_714
from ess_sunspec.models.der_storage_capacity_713 import DER_STORAGE_CAPACITY_713
from ess_sunspec.models.lithium_ion_bank_803 import LITHIUM_ION_BANK_803
from ess_sunspec.models.lithium_ion_string_804 import LITHIUM_ION_STRING_804
from ess_sunspec.models.meter_wye_203 import METER_WYE_203

MODELS: dict[int, ModelDef] = {
    model.model_id: model
    for model in (
        COMMON_1,
        METER_WYE_203,
        DER_AC_MEASUREMENT_701,
        DER_STORAGE_CAPACITY_713,
        DER_DC_MEASUREMENT_714,
        BATTERY_802,
        LITHIUM_ION_BANK_803,
        LITHIUM_ION_STRING_804,
    )
}

__all__ = [
    "BATTERY_802",
    "COMMON_1",
    "DER_AC_MEASUREMENT_701",
    "DER_DC_MEASUREMENT_714",
    "DER_STORAGE_CAPACITY_713",
    "LITHIUM_ION_BANK_803",
    "LITHIUM_ION_STRING_804",
    "METER_WYE_203",
    "MODELS",
]
