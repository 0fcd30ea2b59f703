"""Every SQL statement of the alerts package, one module per table it owns.

The alerts own their tables (migrations in ``store/migrations``): ``alerts`` (:mod:`.alert_rows`,
re-exported here), ``alert_groups`` and ``alert_group_members`` (:mod:`.groups`),
``alert_outbox`` (:mod:`.outbox`), ``alert_silences`` (:mod:`.silences`), the colour views of
places (:mod:`.places`) and the reads of the audit journal that the feed, the state updates and
an alert's history need (:mod:`.journal_reads`; the journal's writes are :mod:`journal`'s).
Nothing else in ``alerts/`` runs SQL.
"""

from alerts.records.alert_rows import (
    SELECT,
    by_ids,
    close_superseded,
    fetch,
    from_row,
    get,
    insert,
    latest_for_keys,
    mark_routed,
    mark_told,
    open_active_of,
    timers_due,
    unrouted,
    untold,
    update,
    visible,
)

__all__ = ["SELECT", "by_ids", "close_superseded", "fetch", "from_row", "get", "insert", "latest_for_keys",
           "mark_routed", "mark_told", "open_active_of", "timers_due", "unrouted", "untold", "update", "visible"]
