-- A second, read-only MQTT login per gateway for monitoring: `{enterprise}.{gateway}.monitor`
-- may read the gateway's alerts (and errors) topics, nothing else. The broker makes a login's
-- username its client id, so a monitor and its gateway never kick each other off. Issued, rotated
-- and revoked together with the gateway's own login (store/gateway_credentials.py); only the
-- Mosquitto hash is kept. NULL: issued before this migration (a rotation adds it).
ALTER TABLE gateway_credentials
    ADD COLUMN monitor_password_hash text
        CHECK (monitor_password_hash ~ '^\$7\$[0-9]+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$');
