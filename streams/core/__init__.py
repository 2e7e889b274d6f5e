"""The stream processor's pure rules: scan taxonomy, parcel state machine, handling units, SLA rules
and the event clock. Plain functions and dataclasses, no Kafka (``ruff.toml`` here bans the imports)."""
