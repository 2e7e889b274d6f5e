"""Stream processing: parcel state and SLA breaches in Faust. Reads ``scans`` and ``manifests``,
writes ``parcel-state``, ``status-updates``, ``sla-events`` and ``dead-letters``.

The rules are pure and live in plain modules (taxonomy, parcel, consolidation, sla); the Faust app
only moves bytes in and out of them."""
