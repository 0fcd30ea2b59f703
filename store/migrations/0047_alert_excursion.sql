-- The start of an alert's current excursion (the condition's latest raise), apart from the
-- incident's start: persistence upgrades and the "持续 N 分钟" of messages count from it, so an
-- alert that resolved and reopened does not inherit the time of its first opening (issue 10 §6).
ALTER TABLE alerts ADD COLUMN raised_us bigint;
UPDATE alerts SET raised_us = CASE WHEN reopened > 0 THEN grade_since_us ELSE started_us END;
ALTER TABLE alerts ALTER COLUMN raised_us SET NOT NULL;
