-- Registry: regions, enterprises, zones, gateways, sensors, major hazard sources.
-- Dense integer ids (zones.id, gateways.id, sensors.id) index the stages' column arrays;
-- codes are unique within their enterprise (real transducer codes repeat from mine to mine).

CREATE TABLE regions (
    code        text PRIMARY KEY CHECK (code ~ '^[0-9]{6}$'),   -- GB/T 2260
    name        text NOT NULL,
    parent      text REFERENCES regions (code) CHECK (parent IS DISTINCT FROM code),
    level       text NOT NULL CHECK (level IN ('province', 'city', 'county')),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX regions_parent ON regions (parent);

CREATE TABLE enterprises (
    id               text PRIMARY KEY,
    name             text NOT NULL,
    region           text NOT NULL REFERENCES regions (code),
    industry         text NOT NULL CHECK (industry IN
                        ('coal_mine', 'non_coal_mine', 'hazardous_chemicals', 'cold_storage', 'gas_pipeline')),
    risk_colour      text CHECK (risk_colour IN ('red', 'orange', 'yellow', 'blue')),  -- 静态评估
    risk_assessed_on date,
    contacts         jsonb NOT NULL DEFAULT '[]',   -- [{role, name, phone, webhook, email}]
    active           boolean NOT NULL DEFAULT true,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX enterprises_region ON enterprises (region);

CREATE TABLE zones (
    id          serial PRIMARY KEY,
    enterprise  text NOT NULL REFERENCES enterprises (id),
    code        text NOT NULL,
    name        text NOT NULL,
    kind        text,            -- working_face, roadway, tank_farm, machine_room, station, underground_space …
    active      boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (enterprise, code)
);

CREATE TABLE zone_adjacency (
    zone_a  integer NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    zone_b  integer NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    PRIMARY KEY (zone_a, zone_b),
    CHECK (zone_a < zone_b)
);

CREATE TABLE gateways (
    id                  serial PRIMARY KEY,
    enterprise          text NOT NULL REFERENCES enterprises (id),
    code                text NOT NULL,
    name                text,
    zone                integer REFERENCES zones (id),
    expected_interval_s real NOT NULL DEFAULT 60 CHECK (expected_interval_s > 0),
    active              boolean NOT NULL DEFAULT true,
    -- liveness, kept by the collector
    online              boolean,                -- last status message (Last Will = offline)
    status_at           timestamptz,
    last_seen_at        timestamptz,            -- last message of any kind
    stale               boolean NOT NULL DEFAULT false,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (enterprise, code)
);

CREATE TABLE sensors (
    id                  serial PRIMARY KEY,
    enterprise          text NOT NULL REFERENCES enterprises (id),
    code                text NOT NULL,
    gateway             integer NOT NULL REFERENCES gateways (id),
    zone                integer REFERENCES zones (id),
    kind                text NOT NULL,
    unit                text NOT NULL,
    location            text NOT NULL DEFAULT '',
    location_class      text NOT NULL DEFAULT '',
    expected_interval_s real NOT NULL CHECK (expected_interval_s > 0),
    range_min           double precision,
    range_max           double precision,
    setpoints           jsonb NOT NULL DEFAULT '{}',   -- overrides; may only tighten regulatory setpoints
    active              boolean NOT NULL DEFAULT true,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (enterprise, code)
);
CREATE INDEX sensors_gateway ON sensors (gateway);
CREATE INDEX sensors_zone ON sensors (zone);

CREATE TABLE hazard_sources (       -- 重大危险源
    id          serial PRIMARY KEY,
    enterprise  text NOT NULL REFERENCES enterprises (id),
    code        text NOT NULL,
    name        text NOT NULL,
    level       smallint NOT NULL CHECK (level BETWEEN 1 AND 4),   -- 一级 … 四级
    active      boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (enterprise, code)
);

CREATE TABLE hazard_source_sensors (
    hazard_source  integer NOT NULL REFERENCES hazard_sources (id) ON DELETE CASCADE,
    sensor         integer NOT NULL REFERENCES sensors (id) ON DELETE CASCADE,
    PRIMARY KEY (hazard_source, sensor)
);

-- Bumped by every registry change; the collector reloads its snapshot when it moves.
CREATE TABLE registry_version (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    bigint NOT NULL
);
INSERT INTO registry_version VALUES (true, 1);
