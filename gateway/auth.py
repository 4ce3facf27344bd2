"""API keys and tenants: DATAPILOT_API_KEYS parsed once, keys kept only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from datapilot_runtime.context import quota_pending_var, tenant_var
from gateway.json_response import FastJSONResponse as JSONResponse
from gateway.problems import problem_response

ANONYMOUS_TENANT = "anonymous"
_HASHED_PREFIX = "sha256:"


def hash_key(key: str) -> str:
    """The stored form of an API key: `sha256:<hex>`."""
    return _HASHED_PREFIX + hashlib.sha256(key.encode()).hexdigest()


class ApiKeyError(ValueError):
    """DATAPILOT_API_KEYS is malformed."""


@dataclass(frozen=True)
class ApiKeys:
    """Digest -> tenant. Entries are `tenant:key` or `tenant:sha256:<hex>`, comma-separated."""

    digests: dict[str, str]

    @classmethod
    def parse(cls, spec: str) -> ApiKeys:
        digests: dict[str, str] = {}
        for entry in filter(None, (part.strip() for part in spec.split(","))):
            tenant, sep, secret = entry.partition(":")
            if not sep or not tenant or not secret:
                raise ApiKeyError(
                    "DATAPILOT_API_KEYS entries are tenant:key or tenant:sha256:<hex>"
                )
            if not tenant.replace("-", "").replace("_", "").isalnum() or len(tenant) > 64:
                raise ApiKeyError("tenant names are 1-64 letters, digits, '-' or '_'")
            digest = secret if secret.startswith(_HASHED_PREFIX) else hash_key(secret)
            if len(digest) != len(_HASHED_PREFIX) + 64:
                raise ApiKeyError("a sha256: key must hold 64 hex digits")
            digests[digest] = tenant
        return cls(digests)

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    def tenant_for(self, key: str) -> str | None:
        """The tenant of a presented key, compared in constant time, or None."""
        presented = hash_key(key)
        found = None
        for digest, tenant in self.digests.items():
            if hmac.compare_digest(digest, presented):
                found = tenant
        return found


def presented_key(authorization: str, x_api_key: str) -> str:
    """The key from `Authorization: Bearer <key>` or `X-API-Key: <key>` ('' if none)."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return x_api_key.strip()


def tenant_of(keys: ApiKeys, headers: list[tuple[bytes, bytes]]) -> str | None:
    """The tenant the request's headers authenticate (anonymous without keys), or None."""
    if not keys.enabled:
        return ANONYMOUS_TENANT
    by_name = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}
    key = presented_key(by_name.get("authorization", ""), by_name.get("x-api-key", ""))
    return keys.tenant_for(key) if key else None


def unauthenticated() -> JSONResponse:
    """The 401 problem of a request without a valid key."""
    return problem_response(
        401,
        "unauthenticated",
        "A valid API key is required (Authorization: Bearer <key> or X-API-Key).",
        headers={"WWW-Authenticate": 'Bearer realm="datapilot"'},
    )


class ApiKeyMiddleware:
    """Authenticates `/api/*` requests and binds their tenant (and one rate-limit charge)."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self._app = app
        self._keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/api/"):
            await self._app(scope, receive, send)
            return
        tenant = tenant_of(self._keys, scope["headers"])
        if tenant is None:
            await unauthenticated()(scope, receive, send)
            return
        tenant_token = tenant_var.set(tenant)
        quota_token = quota_pending_var.set(True)
        try:
            await self._app(scope, receive, send)
        finally:
            quota_pending_var.reset(quota_token)
            tenant_var.reset(tenant_token)
