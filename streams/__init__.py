"""Stream processing: parcel state and SLA breaches in Faust. Reads ``scans`` and ``manifests``,
writes ``parcel-state``, ``status-updates``, ``sla-events`` and ``dead-letters``.

The rules are pure and live in `streams.core` (taxonomy, rules, parcel, consolidation, sla, clock); the Faust
shell in `streams.worker` only moves bytes in and out of them."""
