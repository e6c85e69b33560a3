"""``/v1/users``: user administration (the gateway's own routes; the 1NCE files have none).

Owner and Admin may call them (access class ``users``); what they may do to whom follows
SPEC §7 (``gateway.accounts``): an Owner assigns every role and changes every user, an Admin
creates, disables, enables and resets only users of role User. ``GET /v1/users/me`` is open to
every role. A refused change answers 403 and changes nothing.
"""

from __future__ import annotations

import logging

from aiohttp import web

from inspector import accounts as store_accounts
from inspector.accounts import Account

from ... import accounts
from ..errors import ApiError, not_found
from ..routes import ANY, AUTH_KEY, USERS, ApiRoute, body_of, gateway_of, json_response, params_of, principal_of
from ..timefmt import format_time

log = logging.getLogger("nce.api.users")


def user_json(user: Account) -> dict:
    out = {"userId": user.username, "role": user.role, "status": user.status,
           "createdTime": format_time(user.created_ms), "updatedTime": format_time(user.updated_ms)}
    if user.last_login_ms:
        out["lastLoginTime"] = format_time(user.last_login_ms)
    return out


def _check(check, *args, field: str) -> None:  # type: ignore[no-untyped-def]
    try:
        check(*args)
    except accounts.PolicyError as exc:
        raise ApiError(exc.status, str(exc), field=field if exc.status == 400 else None) from None


async def _reload(request: web.Request) -> None:
    await request.config_dict[AUTH_KEY].reload()


async def me(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    user = await gateway.read(store_accounts.get_account, gateway.store, principal_of(request).username)
    if user is None:
        raise not_found("your user no longer exists")
    return json_response(user_json(user))


async def list_users(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    users = await gateway.read(store_accounts.all_accounts, gateway.store)
    return json_response([user_json(u) for u in users])


async def get_user(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    user = await gateway.read(store_accounts.get_account, gateway.store, params_of(request)["userId"])
    if user is None:
        raise not_found(f"no user {params_of(request)['userId']}")
    return json_response(user_json(user))


async def create_user(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    actor = principal_of(request)
    body = body_of(request)
    _check(accounts.check_create, actor.role, body["role"], field="role")
    _check(accounts.normalise_username, body["userId"], field="userId")
    _check(accounts.check_password, body["password"], field="password")
    username = accounts.normalise_username(body["userId"])
    password_hash = await request.config_dict[AUTH_KEY].hash_password(body["password"], actor.username)
    try:
        user = await gateway.committer.write(store_accounts.create_account, gateway.store, username, password_hash,
                                             body["role"])
    except store_accounts.AccountError as exc:
        raise ApiError(exc.status, str(exc)) from None
    log.info("user created", extra={"event": "user_created", "user": user.username, "role": user.role,
                                    "by": actor.username})
    await _reload(request)
    return json_response(user_json(user), status=201)


async def update_user(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    actor = principal_of(request)
    body = body_of(request)
    username = params_of(request)["userId"].lower()
    target = await gateway.read(store_accounts.get_account, gateway.store, username)
    if target is None:
        raise not_found(f"no user {username}")
    _check(accounts.check_change, actor.role, target.role, body.get("role"), field="role")
    if "password" in body:
        _check(accounts.check_password, body["password"], field="password")
    password_hash = None
    if "password" in body:
        password_hash = await request.config_dict[AUTH_KEY].hash_password(body["password"], actor.username)

    def allowed(current: Account) -> None:
        """The policy again, inside the write transaction, on the rows as they are now: hashing
        takes a while, and the target's (or the actor's) role may have changed meanwhile."""
        now_actor = store_accounts.get_account(gateway.store, actor.username)
        if now_actor is None or not now_actor.enabled:
            raise accounts.PolicyError(f"user {actor.username} is disabled or no longer exists")
        accounts.check_change(now_actor.role, current.role, body.get("role"))

    try:
        user = await gateway.committer.write(
            lambda: store_accounts.update_account(gateway.store, username, role=body.get("role"),
                                                  status=body.get("status"), password_hash=password_hash,
                                                  revoke_tokens=bool(body.get("revokeTokens")), allowed=allowed))
    except store_accounts.AccountError as exc:
        raise ApiError(exc.status, str(exc)) from None
    except accounts.PolicyError as exc:
        raise ApiError(exc.status, str(exc)) from None
    if user is None:
        raise not_found(f"no user {username}")
    log.info("user changed", extra={"event": "user_changed", "user": user.username, "role": user.role,
                                    "status": user.status, "by": actor.username})
    await _reload(request)
    return json_response(user_json(user))


_USER = {"$ref": "#/components/schemas/gatewayUser"}
_ERRORS = {"401": {"$ref": "#/components/responses/UnauthorizedError"},
           "403": {"$ref": "#/components/responses/ForbiddenError"}}
_USER_ID = {"name": "userId", "in": "path", "required": True, "description": "the user's e-mail address",
            "schema": {"type": "string", "minLength": 3, "maxLength": 254}}
SCHEMAS = {
    "gatewayUser": {
        "type": "object", "additionalProperties": False,
        "required": ["userId", "role", "status", "createdTime", "updatedTime"],
        "properties": {
            "userId": {"type": "string", "description": "e-mail address; the user name for /oauth/token"},
            "role": {"type": "string", "enum": list(store_accounts.ROLES)},
            "status": {"type": "string", "enum": list(store_accounts.STATUSES)},
            "createdTime": {"type": "string", "format": "date-time"},
            "updatedTime": {"type": "string", "format": "date-time"},
            "lastLoginTime": {"type": "string", "format": "date-time"},
        },
    },
    "gatewayUserCreate": {
        "type": "object", "additionalProperties": False, "required": ["userId", "password", "role"],
        "properties": {
            "userId": {"type": "string", "format": "email", "minLength": 3, "maxLength": 254,
                       "description": "e-mail address"},
            "password": {"type": "string", "minLength": accounts.MIN_PASSWORD_LENGTH,
                         "maxLength": accounts.MAX_PASSWORD_LENGTH},
            "role": {"type": "string", "enum": list(store_accounts.ROLES)},
        },
    },
    "gatewayUserUpdate": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "role": {"type": "string", "enum": list(store_accounts.ROLES)},
            "status": {"type": "string", "enum": list(store_accounts.STATUSES),
                       "description": "Disabled: the user can no longer log in and its tokens stop working"},
            "password": {"type": "string", "minLength": accounts.MIN_PASSWORD_LENGTH,
                         "maxLength": accounts.MAX_PASSWORD_LENGTH,
                         "description": "a new password; the user's earlier tokens stop working"},
            "revokeTokens": {"type": "boolean",
                             "description": "true: every token issued to the user so far stops working"},
        },
    },
}


def _op(summary: str, description: str, ok: str, schema: dict | None, *, body: str | None = None,
        path_param: bool = False, extra: dict | None = None) -> dict:
    responses: dict = {ok: {"description": "OK" if ok == "200" else "Created"}}
    if schema is not None:
        responses[ok]["content"] = {"application/json": {"schema": schema}}
    responses.update(_ERRORS)
    responses.update(extra or {})
    op: dict = {"tags": ["Users"], "summary": summary, "description": description, "responses": responses}
    if path_param:
        op["parameters"] = [dict(_USER_ID)]
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{body}"}}}}
    return op


_404 = {"404": {"$ref": "#/components/responses/NotFoundError"}}
_409 = {"409": {"$ref": "#/components/responses/ConflictError"}}


def routes() -> list[ApiRoute]:
    return [
        ApiRoute("GET", "/v1/users/me", me, ANY, schemas=SCHEMAS,
                 operation=_op("Get Own User", "The user of the token.", "200", _USER, extra=_404)),
        ApiRoute("GET", "/v1/users", list_users, USERS, schemas=SCHEMAS,
                 operation=_op("Get All Users", "Every user with role and status.", "200",
                               {"type": "array", "items": _USER})),
        ApiRoute("POST", "/v1/users", create_user, USERS, schemas=SCHEMAS,
                 operation=_op("Create User", "Owner: any role; Admin: role User only.", "201", _USER,
                               body="gatewayUserCreate", extra=_409)),
        ApiRoute("GET", "/v1/users/{userId}", get_user, USERS, schemas=SCHEMAS,
                 operation=_op("Get Single User", "One user.", "200", _USER, path_param=True, extra=_404)),
        ApiRoute("PATCH", "/v1/users/{userId}", update_user, USERS, schemas=SCHEMAS,
                 operation=_op("Update User",
                               "Change role, status or password. Owner: any user and role; Admin: users of role "
                               "User only, and only to role User. The last enabled Owner can be neither "
                               "disabled nor demoted (409).", "200", _USER, body="gatewayUserUpdate",
                               path_param=True, extra={**_404, **_409})),
    ]
