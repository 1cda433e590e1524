-- 0001: wide tables of the standard data model, one per device kind.
-- Typed columns mirror ess_common.model (a unit test keeps them in step); vendor
-- points go to `extras`. The natural key is (device_id, ts): one row per device
-- per one-second slot, which is what makes replays idempotent.

-- SunSpec 802 battery + 803 lithium-ion bank; one row per bank per second
CREATE TABLE IF NOT EXISTS bank (
    device_id text NOT NULL,
    site text NOT NULL,
    bank_id smallint NOT NULL,
    ts timestamptz NOT NULL,
    read_at timestamptz NOT NULL,
    quality smallint NOT NULL DEFAULT 0,
    soc_pct double precision,
    soh_pct double precision,
    voltage_v double precision,
    current_a double precision,
    power_w double precision,
    charge_current_limit_a double precision,
    discharge_current_limit_a double precision,
    cell_v_max double precision,
    cell_v_min double precision,
    cell_v_avg double precision,
    module_t_max_c double precision,
    module_t_min_c double precision,
    module_t_avg_c double precision,
    strings_connected bigint,
    state bigint,
    alarm_bits bigint,
    warning_bits bigint,
    extras jsonb,
    written_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bank_natural_key UNIQUE (device_id, ts)
);
CREATE INDEX IF NOT EXISTS bank_site_ts ON bank (site, ts DESC);

-- SunSpec 804 lithium-ion string; one row per rack per second
CREATE TABLE IF NOT EXISTS rack (
    device_id text NOT NULL,
    site text NOT NULL,
    bank_id smallint NOT NULL,
    rack_id smallint NOT NULL,
    ts timestamptz NOT NULL,
    read_at timestamptz NOT NULL,
    quality smallint NOT NULL DEFAULT 0,
    soc_pct double precision,
    soh_pct double precision,
    voltage_v double precision,
    current_a double precision,
    cell_v_max double precision,
    cell_v_min double precision,
    cell_v_avg double precision,
    cell_v_max_module bigint,
    cell_v_min_module bigint,
    module_t_max_c double precision,
    module_t_min_c double precision,
    module_t_avg_c double precision,
    modules bigint,
    state bigint,
    alarm_bits bigint,
    warning_bits bigint,
    extras jsonb,
    written_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rack_natural_key UNIQUE (device_id, ts)
);
CREATE INDEX IF NOT EXISTS rack_site_ts ON rack (site, ts DESC);

-- SunSpec 701/713/714 DER (power conversion system); one row per PCS per second
CREATE TABLE IF NOT EXISTS pcs (
    device_id text NOT NULL,
    site text NOT NULL,
    unit_id smallint NOT NULL,
    ts timestamptz NOT NULL,
    read_at timestamptz NOT NULL,
    quality smallint NOT NULL DEFAULT 0,
    active_power_w double precision,
    reactive_power_var double precision,
    apparent_power_va double precision,
    power_factor double precision,
    frequency_hz double precision,
    voltage_ll_v double precision,
    current_a double precision,
    dc_voltage_v double precision,
    dc_current_a double precision,
    dc_power_w double precision,
    energy_charged_wh double precision,
    energy_discharged_wh double precision,
    soc_pct double precision,
    energy_available_wh double precision,
    cabinet_t_c double precision,
    state bigint,
    alarm_bits bigint,
    extras jsonb,
    written_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pcs_natural_key UNIQUE (device_id, ts)
);
CREATE INDEX IF NOT EXISTS pcs_site_ts ON pcs (site, ts DESC);

-- auxiliary meters and environment; one row per device per second
CREATE TABLE IF NOT EXISTS etc (
    device_id text NOT NULL,
    site text NOT NULL,
    unit_id smallint NOT NULL,
    ts timestamptz NOT NULL,
    read_at timestamptz NOT NULL,
    quality smallint NOT NULL DEFAULT 0,
    active_power_w double precision,
    reactive_power_var double precision,
    frequency_hz double precision,
    voltage_v double precision,
    current_a double precision,
    energy_import_wh double precision,
    energy_export_wh double precision,
    ambient_t_c double precision,
    humidity_pct double precision,
    state bigint,
    alarm_bits bigint,
    extras jsonb,
    written_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT etc_natural_key UNIQUE (device_id, ts)
);
CREATE INDEX IF NOT EXISTS etc_site_ts ON etc (site, ts DESC);
