-- The piece of equipment a sensor belongs to (a pump loop's pressure, flow, temperature, vibration
-- and current): its channels are judged together by the equipment detector. A code within the
-- sensor's enterprise, like sensor codes; NULL where the sensor belongs to no group.
ALTER TABLE sensors ADD COLUMN equipment text CHECK (equipment ~ '^[A-Za-z0-9_.\-]{1,64}$');
