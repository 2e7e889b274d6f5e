"""A customer's webhook endpoint, for the demo: verifies each delivery's signature, counts
deliveries and duplicates (by idempotency key), and reports them at ``GET /stats``.

Run: ``python -m deploy.webhook_receiver --port 8090 --secret demo-secret``.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from aiohttp import web

from consumers.notifier.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, SignatureError, verify_signature


def build_app(secret: str) -> web.Application:
    counts: Counter[str] = Counter()
    seen: set[str] = set()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verify_signature(secret, body, request.headers.get(SIGNATURE_HEADER, ""), now=time.time())
        except SignatureError:
            counts["rejected"] += 1
            return web.Response(status=401, text="bad signature")
        counts["verified"] += 1
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if key in seen:
            counts["duplicates"] += 1
        seen.add(key)
        return web.Response(status=204)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({**counts, "unique": len(seen)})

    app = web.Application()
    app.router.add_post("/hooks/{name}", receive)
    app.router.add_get("/stats", stats)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--secret", default="demo-secret", help="The subscription's signing secret.")
    args = parser.parse_args()
    web.run_app(build_app(args.secret), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
