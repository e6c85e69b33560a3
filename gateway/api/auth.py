"""Access tokens, the per-request token check, and login throttling.

**Tokens** are JWTs (HS256) signed with a key the gateway generates on first start and keeps in
the store (``api_signing_keys``; never logged). Claims: ``sub`` (user name), ``uid``, ``jti``
(random id), ``iat``/``exp`` (seconds), ``ims`` (issued-at in ms), ``uct`` (the account's
creation time, ms), ``scope``. A token is valid when its signature checks, it has not expired,
its ``jti`` is not revoked, and its user exists, is enabled and has not invalidated its tokens
since (``tokens_valid_after_ms``: disable, password change). The token is bound to the account,
not only to its id: ``sub`` and ``uct`` must match the user with that id (ids are never reused
either, see migration 0030), so a new account never inherits a deleted one's tokens. The caller's role is the user's *current* role, so a role change applies to
tokens already issued.

**The check is cheap**: no store access per request. Users, revoked token ids and keys are held
in memory and reloaded when ``meta.accounts_version`` moves (changes by the API apply at once,
changes by the CLI within ``registry.poll_interval_seconds``).

**Logins** are throttled (``gateway.api.throttle``): every attempt takes a slot before its
password is checked; beyond ``login_max_failures_per_user`` attempts for one user name, or
``login_max_failures_per_ip`` from one address, within ``login_window_seconds`` a login answers
429 (with ``Retry-After``) without checking the password. Password checks (argon2id, ~0.35 s)
run one at a time in their own thread, so a login flood cannot take both cores from the devices,
queued per client address and served round-robin, at most ``login_max_pending_checks`` at once.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from inspector import accounts as store_accounts
from inspector.accounts import Account

from .. import accounts
from .errors import ApiError, error_body
from .throttle import FairChecks, LoginLimiter

__all__ = ["Authenticator", "LoginLimiter", "Principal", "TokenSigner", "login_error", "scope_of"]

log = logging.getLogger("nce.api.auth")

REALM = "nce-gateway"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user behind a valid token."""

    user_id: int
    username: str
    role: str
    jti: str
    expires_ms: int


@dataclass(frozen=True, slots=True)
class Claims:
    username: str
    user_id: int
    jti: str
    issued_ms: int
    expires_ms: int
    account_created_ms: int


class TokenError(Exception):
    """A token that is not valid; the message is safe to show (it never contains the token)."""


class TokenSigner:
    """HS256 JWTs with the store's keys; the header (which names the key) selects the key."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("no signing key")
        self._by_header: dict[str, bytes] = {}
        self._signing_header = ""
        for i, (kid, secret) in enumerate(keys):
            header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}, separators=(",", ":")).encode())
            self._by_header[header] = secret
            if i == 0:
                self._signing_header = header

    def sign(self, claims: dict[str, Any]) -> str:
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{self._signing_header}.{payload}"
        signature = hmac.digest(self._by_header[self._signing_header], signing_input.encode("ascii"), "sha256")
        return f"{signing_input}.{_b64(signature)}"

    def verify(self, token: str) -> Claims:
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("malformed token")
        header, payload, signature = parts
        key = self._by_header.get(header)
        if key is None:
            raise TokenError("token not issued by this gateway")
        expected = hmac.digest(key, f"{header}.{payload}".encode("ascii", "replace"), "sha256")
        try:
            given = _unb64(signature)
        except ValueError:
            raise TokenError("malformed token") from None
        if not hmac.compare_digest(expected, given):
            raise TokenError("bad token signature")
        try:
            claims = json.loads(_unb64(payload))
            return Claims(claims["sub"], int(claims["uid"]), claims["jti"], int(claims["ims"]),
                          int(claims["exp"]) * 1000, int(claims["uct"]))
        except (ValueError, KeyError, TypeError):
            raise TokenError("malformed token") from None


class Authenticator:
    """The in-memory view of accounts that every request is checked against."""

    def __init__(self, gateway: Any, *, ttl_seconds: int, limiter: LoginLimiter, max_pending_checks: int = 32,
                 clock: Callable[[], float] = time.time) -> None:
        self.gateway = gateway
        self.ttl_seconds = ttl_seconds
        self.limiter = limiter
        self.clock = clock
        self.version = -1
        self._by_id: dict[int, Account] = {}
        self._revoked: frozenset[str] = frozenset()
        self._signer: TokenSigner | None = None
        # tokens whose signature was checked -> their claims (bounded; cleared with the keys): a
        # script reuses its token for an hour, so most requests skip the HMAC and the decoding.
        # Expiry, revocation and the user are still checked on every request.
        self._verified: dict[str, Claims] = {}
        self._hashing = ThreadPoolExecutor(1, thread_name_prefix="password-check")
        self.checks = FairChecks(self._hashing, threads=1, max_pending=max_pending_checks)

    # loading ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.gateway.committer.write(store_accounts.ensure_signing_key, self.gateway.store)
        await self.reload()

    async def stop(self) -> None:
        self._hashing.shutdown(wait=False, cancel_futures=True)

    async def reload(self) -> None:
        version, users, revoked, keys = await self.gateway.read(store_accounts.snapshot, self.gateway.store)
        self._by_id = {u.id: u for u in users}
        self._revoked = revoked
        self._signer = TokenSigner(keys)
        self._verified = {}
        self.version = version

    def current_version(self) -> int:
        return self.version

    def user_by_id(self, user_id: int) -> Account | None:
        return self._by_id.get(user_id)

    def knows(self, user: Account) -> bool:
        """Whether the in-memory copy has this user as the store has it now (for the token check)."""
        cached = self._by_id.get(user.id)
        return (cached is not None and cached.enabled == user.enabled and cached.role == user.role
                and cached.tokens_valid_after_ms == user.tokens_valid_after_ms)

    # the per-request check --------------------------------------------------------------

    def authenticate(self, request: web.Request) -> Principal:
        header = request.headers.get("Authorization")
        if not header:
            raise unauthorized("a bearer token is required (POST /management-api/oauth/token)", None)
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthorized("the Authorization header must be 'Bearer <token>'", "invalid_request")
        return self.check_token(token)

    VERIFIED_CACHE = 10_000

    def check_token(self, token: str) -> Principal:
        claims = self._verified.get(token)
        if claims is None:
            assert self._signer is not None
            try:
                claims = self._signer.verify(token)
            except TokenError as exc:
                raise unauthorized(str(exc), "invalid_token") from None
            if len(self._verified) >= self.VERIFIED_CACHE:
                self._verified.clear()
            self._verified[token] = claims
        now_ms = int(self.clock() * 1000)
        if claims.expires_ms <= now_ms:
            raise unauthorized("the token has expired", "invalid_token")
        if claims.jti in self._revoked:
            raise unauthorized("the token was revoked", "invalid_token")
        user = self._by_id.get(claims.user_id)
        if user is not None and (user.username != claims.username or user.created_ms != claims.account_created_ms):
            user = None  # another account under a (reused) id: not the token's user
        if user is None or not user.enabled:
            raise unauthorized("the user of this token is disabled or no longer exists", "invalid_token")
        if claims.issued_ms < user.tokens_valid_after_ms:
            raise unauthorized("the token was revoked", "invalid_token")
        return Principal(user.id, user.username, user.role, claims.jti, claims.expires_ms)

    def claims_of(self, token: str) -> Claims | None:
        """The claims of a token with a good signature (expired or not), else None."""
        assert self._signer is not None
        try:
            return self._signer.verify(token)
        except TokenError:
            return None

    # issuing and revoking ---------------------------------------------------------------

    def issue(self, user: Account) -> tuple[str, int]:
        assert self._signer is not None
        now = self.clock()
        issued_ms = int(now * 1000)
        claims = {"sub": user.username, "uid": user.id, "jti": secrets.token_urlsafe(12), "iat": int(now),
                  "ims": issued_ms, "exp": int(now) + self.ttl_seconds, "uct": user.created_ms,
                  "scope": scope_of(user.role)}
        return self._signer.sign(claims), self.ttl_seconds

    async def revoke(self, claims: Claims) -> None:
        await self.gateway.committer.write(store_accounts.revoke_token, self.gateway.store, claims.jti,
                                           claims.user_id, claims.expires_ms)
        self._revoked = self._revoked | {claims.jti}  # at once, before the reload
        await self.reload()

    async def hash_password(self, password: str, actor: str) -> str:
        """Hash a new password (an administrator's request: waits its turn, never refused)."""
        return await self.checks.run(f"user:{actor}", accounts.hash_password, password, capped=False)

    async def check_password(self, source: str, password_hash: str | None, password: str) -> tuple[bool, str | None]:
        """Verify a login's password in ``source``'s turn (None: no such user, checked against a
        dummy hash so that it costs the same); :class:`~gateway.api.throttle.Busy` when too many
        checks wait."""
        return await self.checks.run(source, _verify, password_hash, password)


def _verify(password_hash: str | None, password: str) -> tuple[bool, str | None]:
    if password_hash is None:
        accounts.verify_password(accounts.dummy_hash(), password)
        return False, None
    return accounts.verify_password(password_hash, password)


#: the key with which the console (gateway.console) vouches for the browser's address of a login
CONSOLE_FORWARD_KEY: web.AppKey[str] = web.AppKey("nce.console_forward_key", str)


def client_address(request: web.Request) -> str:
    """The address a login is counted against: the peer's, or the browser's behind the console."""
    from ..console.api_client import FORWARD_HEADER, forwarded_client

    key = request.config_dict.get(CONSOLE_FORWARD_KEY, "")
    return forwarded_client(request.headers.get(FORWARD_HEADER), key) or request.remote or "unknown"


def scope_of(role: str) -> str:
    """The token's scope: ``all`` for Owner (everything), else the role in lower case."""
    return "all" if role == accounts.OWNER else role.lower()


def unauthorized(message: str, error: str | None) -> ApiError:
    challenge = f'Bearer realm="{REALM}"'
    if error is not None:
        description = message.replace('"', "'")
        challenge += f', error="{error}", error_description="{description}"'
    return ApiError(401, message, headers={"WWW-Authenticate": challenge})


def login_error(code: str, message: str, status: int = 400, headers: dict[str, str] | None = None) -> ApiError:
    """An error of the token endpoint, in its own format (authorization.json: Bearer_Token_400)."""
    body: dict[str, Any] = {"statusCode": status, "errorCode": code, "message": message}
    if status == 429:
        body.update({"statusText": "Too Many Requests", "errors": error_body(429, message)["errors"]})
    return ApiError(status, message, headers=headers, body=body)
