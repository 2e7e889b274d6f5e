"""The merchants' subscriptions API: a thin HTTP shell over the notifier's model and store.

Served by the tracking service (``consumers/tracking/app.py`` installs it), which already is the
public, stateless, horizontally scaled HTTP face of consumers/ and uses the same Redis; the notifier
process stays a Kafka consumer with no public port. See docs/webhooks.md ("Managing subscriptions
over HTTP").

A request goes: merchant API key (401) → the body (422, every problem with its field path) → the
merchant named in the body, if any, is the key's (403) → subscriptions per merchant (409) → Redis
(503 when it does not answer). A key sees only subscriptions of scope ``merchant`` for its own
merchant: any other id, a tracking-number (recipient) subscription included, is the same 404 as an
unknown one. The webhook secret is write-only: generated when not given and returned once, in the
201 answer; never returned afterwards. The endpoints are synchronous (FastAPI runs them in its
thread pool) because the notifier's store is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

import redis
from fastapi import APIRouter, FastAPI, Request, Security
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from consumers.journey import DEFAULT_LANGUAGE, LANGUAGES
from consumers.notifier.merchant_keys import MerchantKey, MerchantKeyStore
from consumers.notifier.model import Subscription, SubscriptionError, new_subscription
from consumers.notifier.store import SubscriptionStore
from schemas.statuses import STATUSES

PREFIX: Final = "/v1/subscriptions"
#: Every status update of a merchant's parcels loads all its subscriptions: keep that bounded.
MAX_SUBSCRIPTIONS_PER_MERCHANT: Final = 50
MIN_SECRET_LENGTH: Final = 16

NotificationLanguage = StrEnum("NotificationLanguage", {code: code for code in LANGUAGES})  # type: ignore[misc]
ParcelStatus = StrEnum("ParcelStatus", {status: status for status in STATUSES})  # type: ignore[misc]


class FieldProblem(BaseModel):
    field: str = Field(description="Path of the wrong input, e.g. `body.statuses.1`")
    message: str


class SubscriptionErrorBody(BaseModel):
    error: str = Field(description="Machine-readable code, e.g. `invalid_request`")
    message: str
    problems: list[FieldProblem] = []


class NewSubscription(BaseModel):
    """Exactly one of `webhook_url` and `email`."""

    merchant: str | None = Field(
        None, max_length=200, description="Defaults to the API key's merchant; another merchant is refused (403)"
    )
    webhook_url: str | None = Field(
        None, max_length=2048, description="Deliver by signed HTTP POST to this absolute http(s) URL"
    )
    email: str | None = Field(None, max_length=254, description="Deliver by e-mail to this address")
    secret: str | None = Field(
        None,
        min_length=MIN_SECRET_LENGTH,
        max_length=256,
        description="Webhook signing secret (write-only: never returned). Default: a random one, "
        "returned once in the 201 answer",
        json_schema_extra={"writeOnly": True},
    )
    language: NotificationLanguage = Field(  # type: ignore[valid-type]
        NotificationLanguage(DEFAULT_LANGUAGE), description="Language of e-mails"
    )
    statuses: list[ParcelStatus] = Field(  # type: ignore[valid-type]
        [], max_length=len(STATUSES), description="Only these statuses; empty: every status"
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"webhook_url": "https://shop.example/hooks/parcels", "statuses": ["OutForDelivery", "Delivered"]},
                {"email": "logistics@shop.example", "language": "fr"},
            ]
        },
    )


def _taxonomy_order(status: str) -> tuple[int, str]:
    return (STATUSES.index(status) if status in STATUSES else len(STATUSES), status)


class SubscriptionView(BaseModel):
    subscription_id: str
    merchant: str
    channel: Literal["webhook", "email"]
    webhook_url: str | None = None
    email: str | None = None
    language: str
    statuses: list[str] = Field(description="Empty: every status")
    created_ms: int = Field(description="UTC epoch milliseconds")

    @classmethod
    def of(cls, subscription: Subscription) -> SubscriptionView:
        return cls(
            subscription_id=subscription.subscription_id,
            merchant=subscription.target,
            channel=subscription.channel,
            webhook_url=subscription.address if subscription.channel == "webhook" else None,
            email=subscription.address if subscription.channel == "email" else None,
            language=subscription.language,
            statuses=sorted(subscription.statuses, key=_taxonomy_order),
            created_ms=subscription.created_ms,
        )


class CreatedSubscription(SubscriptionView):
    secret: str | None = Field(
        None, description="The generated webhook signing secret: only here, and only when the request gave none"
    )


class SubscriptionList(BaseModel):
    subscriptions: list[SubscriptionView] = Field(description="Oldest first")


class ApiError(Exception):
    """An answer other than success, with an error body like the ingest gateway's."""

    def __init__(
        self,
        status_code: int,
        error: str,
        message: str,
        problems: list[FieldProblem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = SubscriptionErrorBody(error=error, message=message, problems=problems or [])
        self.headers = headers

    def response(self) -> JSONResponse:
        return JSONResponse(self.body.model_dump(), status_code=self.status_code, headers=self.headers)


def _error(description: str) -> dict[str, Any]:
    return {"model": SubscriptionErrorBody, "description": description}


UNAUTHORIZED: Final = {
    401: {
        **_error("Missing, malformed, unknown or revoked merchant API key."),
        "headers": {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    }
}
UNAVAILABLE: Final = {503: _error("Redis does not answer; retry later.")}
NOT_FOUND: Final = {404: _error("No subscription with this id among the key's merchant's subscriptions.")}
bearer = HTTPBearer(auto_error=False, scheme_name="merchantApiKey", description="pmk_<id>_<secret>")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


def _merchant_key(request: Request, credentials: Credentials) -> MerchantKey:
    api: SubscriptionsApi = request.app.state.subscriptions_api
    return api.authenticate(credentials)


# A dependency, so the key is checked before the body is (no 422 for an unauthenticated caller).
AuthorisedKey = Annotated[MerchantKey, Security(_merchant_key)]


def problems_of(error: RequestValidationError) -> list[FieldProblem]:
    return [
        FieldProblem(field=".".join(str(part) for part in item["loc"]), message=item["msg"]) for item in error.errors()
    ]


def subscription_from_request(body: NewSubscription, merchant: str, now_ms: int) -> Subscription:
    """The subscription a valid request asks for; ApiError 422 with the field path otherwise."""
    if (body.webhook_url is None) == (body.email is None):
        raise ApiError(
            422,
            "invalid_request",
            "give exactly one of webhook_url and email",
            [FieldProblem(field="body", message="give exactly one of webhook_url and email")],
        )
    channel = "webhook" if body.webhook_url is not None else "email"
    if channel == "email" and body.secret is not None:
        message = "a secret signs webhooks only; an e-mail subscription has none"
        raise ApiError(422, "invalid_request", message, [FieldProblem(field="body.secret", message=message)])
    try:
        return new_subscription(
            scope="merchant",
            target=merchant,
            channel=channel,
            address=body.webhook_url if body.webhook_url is not None else str(body.email),
            secret=body.secret,
            language=body.language.value,
            statuses=[status.value for status in body.statuses],
            created_ms=now_ms,
        )
    except SubscriptionError as error:
        field = {"address": f"body.{'webhook_url' if channel == 'webhook' else 'email'}"}.get(
            error.field, f"body.{error.field}"
        )
        raise ApiError(422, "invalid_request", str(error), [FieldProblem(field=field, message=str(error))]) from None


@contextmanager
def _redis_answers() -> Iterator[None]:
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        message = "the subscriptions' Redis does not answer"
        raise ApiError(503, "redis_unavailable", message, headers={"Retry-After": "5"}) from None


class SubscriptionsApi:
    """The routes and error handlers, over one synchronous Redis client (connected on first use)."""

    def __init__(self, redis_url: str, redis_prefix: str) -> None:
        self.client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
        self.subscriptions = SubscriptionStore(self.client, redis_prefix)
        self.keys = MerchantKeyStore(self.client, redis_prefix)

    def close(self) -> None:
        self.client.close()

    def authenticate(self, credentials: HTTPAuthorizationCredentials | None) -> MerchantKey:
        with _redis_answers():
            key = self.keys.authenticate(credentials.credentials) if credentials is not None else None
        if key is None:
            raise ApiError(
                401,
                "unauthorized",
                "missing, unknown or revoked merchant API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return key

    def own_subscription(self, key: MerchantKey, subscription_id: str) -> Subscription:
        """The key's merchant's subscription; 404 for any other id, without saying whether it exists."""
        with _redis_answers():
            subscription = self.subscriptions.get(subscription_id)
        if subscription is None or subscription.scope != "merchant" or subscription.target != key.merchant:
            raise ApiError(404, "not_found", f"no subscription {subscription_id}")
        return subscription

    def install(self, app: FastAPI) -> None:
        """Add the routes to ``app``, and the error handlers (validation errors of other routes keep FastAPI's)."""

        @app.exception_handler(ApiError)
        async def api_error(_request: Request, error: ApiError) -> JSONResponse:
            return error.response()

        @app.exception_handler(StarletteHTTPException)
        async def http_error(request: Request, error: StarletteHTTPException) -> Response:
            if not request.url.path.startswith(PREFIX):
                return await http_exception_handler(request, error)
            if error.status_code == 400:  # FastAPI's "error parsing the body" (not UTF-8, say)
                problem = FieldProblem(field="body", message="the body is not readable JSON")
                return ApiError(422, "invalid_request", problem.message, [problem]).response()
            code = "not_found" if error.status_code == 404 else "http_error"
            headers = dict(error.headers) if error.headers else None
            return ApiError(error.status_code, code, str(error.detail), headers=headers).response()

        @app.exception_handler(RequestValidationError)
        async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
            if not request.url.path.startswith(PREFIX):
                return await request_validation_exception_handler(request, error)
            return ApiError(422, "invalid_request", "the request is not valid", problems_of(error)).response()

        app.state.subscriptions_api = self
        app.include_router(self.router())

    def router(self) -> APIRouter:
        router = APIRouter(prefix=PREFIX, tags=["subscriptions"])

        @router.post(
            "",
            status_code=201,
            response_model=CreatedSubscription,
            summary="Subscribe the key's merchant to its parcels' status changes, by webhook or e-mail",
            responses={
                201: {
                    "description": "Created; `Location` is the subscription's URL",
                    "headers": {"Location": {"description": "The subscription's URL", "schema": {"type": "string"}}},
                },
                **UNAUTHORIZED,
                403: _error("The body names another merchant than the key's."),
                409: _error(f"The merchant already has {MAX_SUBSCRIPTIONS_PER_MERCHANT} subscriptions."),
                422: _error("An invalid request: every problem with its field path."),
                **UNAVAILABLE,
            },
        )
        def create_subscription(body: NewSubscription, key: AuthorisedKey, response: Response) -> Any:
            if body.merchant is not None and body.merchant.strip() != key.merchant:
                raise ApiError(403, "forbidden_merchant", "this API key manages only its own merchant's subscriptions")
            subscription = subscription_from_request(body, key.merchant, time.time_ns() // 1_000_000)
            with _redis_answers():
                if self.subscriptions.count_of("merchant", key.merchant) >= MAX_SUBSCRIPTIONS_PER_MERCHANT:
                    raise ApiError(
                        409,
                        "too_many_subscriptions",
                        f"a merchant may have at most {MAX_SUBSCRIPTIONS_PER_MERCHANT} subscriptions; delete one first",
                    )
                self.subscriptions.add(subscription)
            response.headers["Location"] = f"{PREFIX}/{subscription.subscription_id}"
            generated = subscription.channel == "webhook" and body.secret is None
            return CreatedSubscription(
                **SubscriptionView.of(subscription).model_dump(), secret=subscription.secret if generated else None
            )

        @router.get(
            "",
            response_model=SubscriptionList,
            summary="The key's merchant's subscriptions (secrets are never returned)",
            responses={**UNAUTHORIZED, **UNAVAILABLE},
        )
        def list_subscriptions(key: AuthorisedKey) -> Any:
            with _redis_answers():
                subscriptions = self.subscriptions.of("merchant", key.merchant)
            ordered = sorted(subscriptions, key=lambda s: (s.created_ms, s.subscription_id))
            return SubscriptionList(subscriptions=[SubscriptionView.of(s) for s in ordered])

        @router.get(
            "/{subscription_id}",
            response_model=SubscriptionView,
            summary="One of the key's merchant's subscriptions (the secret is never returned)",
            responses={**UNAUTHORIZED, **NOT_FOUND, **UNAVAILABLE},
        )
        def get_subscription(subscription_id: str, key: AuthorisedKey) -> Any:
            return SubscriptionView.of(self.own_subscription(key, subscription_id))

        @router.delete(
            "/{subscription_id}",
            status_code=204,
            response_class=Response,
            summary="Delete one of the key's merchant's subscriptions (notifications already queued still go)",
            responses={**UNAUTHORIZED, **NOT_FOUND, **UNAVAILABLE},
        )
        def delete_subscription(subscription_id: str, key: AuthorisedKey) -> Response:
            subscription = self.own_subscription(key, subscription_id)
            with _redis_answers():
                self.subscriptions.remove(subscription.subscription_id)
            return Response(status_code=204)

        return router
