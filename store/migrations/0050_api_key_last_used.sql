-- When each API key was last used, for `yujing keys list`. Written by the API's key lookup when a
-- key is read from the database (at most once per key per cache period, api/keys.py CACHE_S), so
-- it is exact to about ten seconds and costs no write per request.
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;
