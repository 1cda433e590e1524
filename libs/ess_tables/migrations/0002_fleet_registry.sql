-- 0002: the fleet registry: what should exist, written down rather than inferred
-- from what arrived. Kept in both clusters (the collector's registrations reach
-- each through its sink; operators write both with `essctl fleet`).

-- one row per site: its time zone (IANA name) for daily loss windows
CREATE TABLE IF NOT EXISTS fleet_site (
    site text PRIMARY KEY,
    time_zone text NOT NULL DEFAULT 'UTC',
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- one row per device: in service from commissioned_at until retired_at (open: NULL)
CREATE TABLE IF NOT EXISTS fleet_device (
    device_id text PRIMARY KEY,
    site text NOT NULL,
    table_name text NOT NULL CHECK (table_name IN ('bank', 'rack', 'pcs', 'etc')),
    commissioned_at timestamptz NOT NULL,
    retired_at timestamptz,
    registered_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (retired_at IS NULL OR retired_at >= commissioned_at)
);
CREATE INDEX IF NOT EXISTS fleet_device_site ON fleet_device (site);

-- maintenance of a device (device_id set) or of a whole site (device_id NULL):
-- slots in [starts_at, ends_at) are not expected and are reported apart
CREATE TABLE IF NOT EXISTS fleet_maintenance (
    id text PRIMARY KEY,
    site text NOT NULL,
    device_id text,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz,
    reason text NOT NULL,
    opened_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at IS NULL OR ends_at > starts_at)
);
CREATE INDEX IF NOT EXISTS fleet_maintenance_site ON fleet_maintenance (site, starts_at);
