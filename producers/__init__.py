"""Carriers' side: the publisher SDK and CLI, format adapters, the ingest gateway and the hub
simulator. Everything here writes to the ``scans``, ``manifests`` and ``dead-letters`` topics."""
