"""``POST /oauth/token`` (authorization.json) and ``POST /oauth/revoke`` (the gateway's own).

The token endpoint answers as 1NCE does: HTTP Basic credentials plus
``{"grant_type": "client_credentials"}`` give ``{status_code, access_token, token_type,
expires_in, userId, scope}``; problems answer 400 with ``{statusCode, errorCode, message}``.
Wrong password and unknown user give the same answer (``BadCredentials``), so the endpoint
does not tell which user names exist. Too many failures answer 429 (see gateway.api.auth).
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
from urllib.parse import parse_qs

from aiohttp import web

from inspector import accounts as store_accounts

from ... import accounts
from ..auth import Authenticator, client_address, login_error, scope_of
from ..throttle import Attempt, Busy
from ..validation import parse_json
from ..errors import bad_request, forbidden
from ..routes import ANY, AUTH_KEY, PUBLIC, ApiRoute, gateway_of, json_response, principal_of

log = logging.getLogger("nce.api.auth")


def auth_of(request: web.Request) -> Authenticator:
    return request.config_dict[AUTH_KEY]


async def _form_or_json(request: web.Request) -> dict | None:
    """The body as a dict (JSON or form-encoded), None when the content type is neither.

    OAuth2 clients send the form (RFC 6749 §4.4.2), 1NCE's examples JSON. A body without a
    Content-Type, or a JSON object labelled as a form (``curl -d '{...}'`` does that), is read
    as what it evidently is rather than answered with a missing ``grant_type``.
    """
    if not request.body_exists:
        return {}
    text = await request.text()
    ctype = request.content_type
    looks_like_json = text.lstrip().startswith("{")
    if "Content-Type" not in request.headers:
        ctype = "application/json" if looks_like_json else "application/x-www-form-urlencoded"
    if ctype == "application/x-www-form-urlencoded" and not looks_like_json:
        return {k: v[-1] for k, v in parse_qs(text).items()}
    if ctype == "application/x-www-form-urlencoded":
        ctype = "application/json"
    if ctype in ("application/json", "") or ctype.endswith("+json"):
        if not text.strip():
            return {}
        try:
            value = parse_json(text)
        except ValueError as exc:
            raise login_error("BodyValidationError", f"Request body validation error: not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise login_error("BodyValidationError", "Request body validation error: expected a JSON object")
        return value
    return None


def _basic_credentials(request: web.Request) -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if not header:
        raise login_error("AuthValidationError",
                          "Auth header validation error: Missing attributes 'username', 'password'")
    if scheme.lower() != "basic":
        raise login_error("AuthValidationError", "Auth header validation error: expected HTTP Basic credentials")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise login_error("AuthValidationError",
                          "Auth header validation error: undecodable Basic credentials") from None
    username, sep, password = decoded.partition(":")
    missing = [name for name, value in (("username", username), ("password", password if sep else "")) if not value]
    if missing:
        names = ", ".join(f"'{m}'" for m in missing)
        raise login_error("AuthValidationError", f"Auth header validation error: Missing attributes {names}")
    return username, password


def _too_many(message: str, wait: float) -> Exception:
    seconds = max(1, math.ceil(wait))
    return login_error("TooManyRequests", message, 429, headers={"Retry-After": str(seconds)})


async def token(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    auth = auth_of(request)
    body = await _form_or_json(request)
    if body is None:
        raise login_error("UnsupportedContentTypeError", "Content-Type not supported")
    username, password = _basic_credentials(request)
    grant_type = body.get("grant_type")
    if grant_type is None:
        raise login_error("BodyValidationError", "Request body validation error: Missing attributes 'grant_type'")
    if grant_type != "client_credentials":
        raise login_error("BodyValidationError",
                          "Request body validation error: grant_type must be 'client_credentials'")
    name = username.strip().lower()
    ip = client_address(request)
    attempt = auth.limiter.reserve(name, ip)  # counted before the check: parallel requests cannot pass
    if not isinstance(attempt, Attempt):
        gateway.metrics.api_logins.labels("throttled").inc()
        log.warning("login refused: too many attempts", extra={"event": "login_throttled", "user": name, "ip": ip})
        raise _too_many(f"Too many failed logins; try again in {max(1, math.ceil(attempt))} s", attempt)
    user = await gateway.read(store_accounts.get_account, gateway.store, name)
    try:
        ok, rehash = await auth.check_password(attempt.ip, user.password_hash if user else None, password)
    except Busy:
        auth.limiter.cancel(attempt)
        gateway.metrics.api_logins.labels("busy").inc()
        log.warning("login refused: password checks busy", extra={"event": "login_busy", "user": name, "ip": ip})
        raise _too_many("Too many logins at once; try again in 1 s", 1) from None
    except BaseException:
        auth.limiter.failed(attempt)  # the client went away: the attempt still counts
        raise
    if user is None or not ok:
        auth.limiter.failed(attempt)
        gateway.metrics.api_logins.labels("bad_credentials").inc()
        log.warning("login failed", extra={"event": "login_failed", "user": name, "ip": ip})
        raise login_error("BadCredentials", "Bad credentials: unknown user or wrong password.")
    auth.limiter.succeeded(attempt)
    if not user.enabled:
        raise login_error("BadCredentials", "User is disabled.")
    await gateway.committer.write(store_accounts.record_login, gateway.store, user.id, rehash)
    if not auth.knows(user):
        await auth.reload()
    access_token, expires_in = auth.issue(user)
    gateway.metrics.api_logins.labels("ok").inc()
    log.info("login", extra={"event": "login", "user": user.username, "ip": ip})
    return json_response({"status_code": 200, "access_token": access_token, "token_type": "bearer",
                          "expires_in": expires_in, "userId": user.username, "scope": scope_of(user.role)},
                         headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def revoke(request: web.Request) -> web.Response:
    """Revoke the token in the body (``token``, JSON or form), or the caller's own token."""
    auth = auth_of(request)
    caller = principal_of(request)
    body = await _form_or_json(request)
    if body is None:
        raise bad_request("body: Content-Type must be application/json or application/x-www-form-urlencoded", "body")
    target = body.get("token")
    if target is not None and not isinstance(target, str):
        raise bad_request("token: must be a string", "token")
    if target is None:
        header = request.headers["Authorization"]
        target = header.partition(" ")[2].strip()
    claims = auth.claims_of(target)
    if claims is None:
        # RFC 7009: a token that is not ours (or garbage) is not an error
        return json_response({"revoked": False, "message": "not a token of this gateway"})
    if claims.user_id != caller.user_id:
        owner = auth.user_by_id(claims.user_id)
        if owner is None or not accounts.may_administer(caller.role, owner.role):
            raise forbidden(f"role {caller.role} may not revoke tokens of {claims.username}")
    await auth.revoke(claims)
    log.info("token revoked", extra={"event": "token_revoked", "user": claims.username, "by": caller.username})
    return json_response({"revoked": True, "message": "the token no longer works"})


REVOKE_OPERATION = {
    "tags": ["Bearer Authorization"],
    "summary": "Revoke Access Token",
    "description": "Revoke an access token at once (RFC 7009 style). Body `{\"token\": \"...\"}` (JSON or "
                   "form-encoded); without a body the caller's own token is revoked. Owner may revoke any "
                   "user's tokens, Admin those of users with role User, everyone their own. A token that this "
                   "gateway did not issue is not an error: the answer says `revoked: false`.",
    "requestBody": {"required": False, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/revokeRequest"}},
        "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/revokeRequest"}}}},
    "responses": {"200": {"description": "OK", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/revokeResponse"}}}},
                  "400": {"$ref": "#/components/responses/BadRequestError"}},
}
REVOKE_SCHEMAS = {
    "revokeRequest": {"type": "object", "additionalProperties": False,
                      "properties": {"token": {"type": "string", "description": "the access token to revoke"}}},
    "revokeResponse": {"type": "object", "required": ["revoked", "message"], "additionalProperties": False,
                       "properties": {"revoked": {"type": "boolean"}, "message": {"type": "string"}}},
}


def _patch_token(operation: dict) -> None:
    operation["responses"]["429"] = {"$ref": "#/components/responses/TooManyRequestsError"}
    operation["requestBody"]["content"]["application/x-www-form-urlencoded"] = {
        "schema": operation["requestBody"]["content"]["application/json"]["schema"]}
    schema = operation["responses"]["200"]["content"]["application/json"]
    schema["schema"] = {"allOf": [schema["schema"]], "required": ["access_token", "token_type", "expires_in",
                                                                   "userId", "scope"]}
    operation["responses"].pop("404", None)


def routes() -> list[ApiRoute]:
    return [
        ApiRoute("POST", "/oauth/token", token, PUBLIC, spec="authorization", patch=_patch_token, validate=False),
        ApiRoute("POST", "/oauth/revoke", revoke, ANY, operation=REVOKE_OPERATION, schemas=REVOKE_SCHEMAS,
                 validate=False),
    ]
