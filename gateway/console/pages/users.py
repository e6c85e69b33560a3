"""Users and roles: Owners and Admins see and change the users their role may change."""

from __future__ import annotations

from aiohttp import web

from ..calls import PREFIX, call, call_ok
from ..render import render, session_of
from ._time import short

ROLES = ("Owner", "Admin", "User", "API")


async def list_users(request: web.Request) -> web.Response:
    answer = await call_ok(request, "GET", "/v1/users")
    users = [{**u, "created": short(u.get("createdTime")), "last_login": short(u.get("lastLoginTime"))}
             for u in answer.body]
    logs = await call(request, "GET", "/v1/administrationLogs", params={"pageSize": 25})
    changes = [{**item, "time": short(item["timestamp"])} for item in (logs.body["items"] if logs.ok else [])]
    return render(request, "users.html", page="users", users=users, roles=ROLES, changes=changes)


async def create_user(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    body = {"userId": str(form.get("userId", "")).strip(), "password": str(form.get("password", "")),
            "role": str(form.get("role", "User"))}
    answer = await call(request, "POST", "/v1/users", body=body)
    session_of(request).say("ok" if answer.ok else "error",
                            f"user {body['userId']} created" if answer.ok else f"{body['userId']}: {answer.message}")
    raise web.HTTPSeeOther(f"{PREFIX}/users")


async def update_user(request: web.Request) -> web.StreamResponse:
    user_id = request.match_info["user"]
    form = await request.post()
    body = {name: str(form[name]) for name in ("role", "status") if form.get(name)}
    if form.get("password"):
        body["password"] = str(form["password"])
    answer = await call(request, "PATCH", f"/v1/users/{user_id}", body=body)
    changed = ", ".join(f"{k} {v}" for k, v in body.items() if k != "password") or "password"
    session_of(request).say("ok" if answer.ok else "error",
                            f"{user_id}: {changed} saved" if answer.ok else f"{user_id}: {answer.message}")
    raise web.HTTPSeeOther(f"{PREFIX}/users")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/users", list_users)
    router.add_post("/users", create_user)
    router.add_post("/users/{user}", update_user)
