"""The authenticated HTTP ingest gateway: carriers POST scan batches or files in their own format;
the gateway validates, authorises and publishes them, answering only once the broker acknowledged.

``app.create_app`` builds the FastAPI application; ``cli.app`` holds the ``gateway`` and ``keys``
commands; ``keys`` manages per-carrier API keys in Redis. See docs/gateway.md.
"""
