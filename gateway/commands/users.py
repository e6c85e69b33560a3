"""``nce-gateway users``: accounts of the management API.

The CLI works on the store file directly, so it acts with Owner rights (whoever can run it can
read the database anyway). A change is in force in the running gateway when the command returns
(gateway/control.py); disabling a user or setting a password invalidates that user's tokens.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time

from inspector import accounts as store_accounts

from .. import accounts
from ..cli import CommandError, add_config_argument
from . import in_force, store_of
from .output import add_format_argument, emit


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("users", help="users and roles of the management API",
                                 description="Users of the management API (roles Owner, Admin, User, API).")
    sub = parser.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    p = sub.add_parser("create-owner", help="create the first user of a new gateway, an Owner",
                       description="Create the first user, an Owner. Refused once an Owner exists: add more "
                                   "Owners with 'users add EMAIL --role Owner'.")
    p.add_argument("email")
    _password_arguments(p)
    add_config_argument(p)
    p.set_defaults(func=create_owner)

    p = sub.add_parser("add", help="add a user with a role")
    p.add_argument("email")
    p.add_argument("--role", choices=store_accounts.ROLES, default=accounts.USER)
    _password_arguments(p)
    add_config_argument(p)
    p.set_defaults(func=add_user)

    p = sub.add_parser("list", help="list users")
    add_format_argument(p)
    add_config_argument(p)
    p.set_defaults(func=list_users)

    p = sub.add_parser("set-role", help="change the role of a user")
    p.add_argument("email")
    p.add_argument("role", choices=store_accounts.ROLES)
    add_config_argument(p)
    p.set_defaults(func=set_role)

    p = sub.add_parser("disable", help="disable a user (its tokens stop working)")
    p.add_argument("email")
    add_config_argument(p)
    p.set_defaults(func=lambda args: _set_status(args, "Disabled"))

    p = sub.add_parser("enable", help="enable a disabled user again")
    p.add_argument("email")
    add_config_argument(p)
    p.set_defaults(func=lambda args: _set_status(args, "Enabled"))

    p = sub.add_parser("set-password", help="set a new password (the user's tokens stop working)")
    p.add_argument("email")
    _password_arguments(p)
    add_config_argument(p)
    p.set_defaults(func=set_password)


def _password_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-file", metavar="FILE",
                        help="read the password from the first line of FILE (default: ask on the terminal)")


def read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as f:
                password = f.readline().rstrip("\r\n")
        except OSError as exc:
            raise CommandError(f"cannot read {args.password_file}: {exc.strerror or exc}") from None
    else:
        if not sys.stdin.isatty():
            raise CommandError("no terminal to ask for the password; use --password-file FILE")
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise CommandError("the two passwords differ")
    try:
        accounts.check_password(password)
    except accounts.PolicyError as exc:
        raise CommandError(str(exc)) from None
    return password


def _username(email: str) -> str:
    try:
        return accounts.normalise_username(email)
    except accounts.PolicyError as exc:
        raise CommandError(str(exc)) from None


def _create(args: argparse.Namespace, role: str) -> int:
    username = _username(args.email)
    store = store_of(args)
    if store_accounts.get_account(store, username) is not None:
        raise CommandError(f"user {username} already exists")
    password_hash = accounts.hash_password(read_password(args))
    try:
        account = store_accounts.create_account(store, username, password_hash, role)
    except store_accounts.AccountError as exc:
        raise CommandError(str(exc)) from None
    in_force(args)
    print(f"created {account.username} ({account.role})")
    return 0


def create_owner(args: argparse.Namespace) -> int:
    owners = [u.username for u in store_accounts.all_accounts(store_of(args)) if u.role == accounts.OWNER]
    if owners:
        raise CommandError(f"this gateway already has an Owner ({', '.join(owners)}); create-owner makes the first "
                           "user only: add another Owner with 'nce-gateway users add EMAIL --role Owner'")
    return _create(args, accounts.OWNER)


def add_user(args: argparse.Namespace) -> int:
    return _create(args, args.role)


def _iso(ms: int | None) -> str:
    if not ms:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def list_users(args: argparse.Namespace) -> int:
    users = store_accounts.all_accounts(store_of(args))
    rows = [{"userId": u.username, "role": u.role, "status": u.status, "createdTime": _iso(u.created_ms),
             "lastLoginTime": _iso(u.last_login_ms) or None} for u in users]
    columns = [("userId", "User"), ("role", "Role"), ("status", "Status"), ("createdTime", "Created"),
               ("lastLoginTime", "Last login")]
    emit(args.format, columns, rows, footer=f"{len(users)} user(s)")
    return 0


def _update(args: argparse.Namespace, **changes: object) -> store_accounts.Account:
    username = _username(args.email)
    try:
        account = store_accounts.update_account(store_of(args), username, **changes)  # type: ignore[arg-type]
    except store_accounts.AccountError as exc:
        raise CommandError(str(exc)) from None
    if account is None:
        raise CommandError(f"no user {username}")
    in_force(args)
    return account


def set_role(args: argparse.Namespace) -> int:
    account = _update(args, role=args.role)
    print(f"{account.username}: {account.role}")
    return 0


def _set_status(args: argparse.Namespace, status: str) -> int:
    account = _update(args, status=status)
    print(f"{account.username}: {account.status}")
    return 0


def set_password(args: argparse.Namespace) -> int:
    username = _username(args.email)
    if store_accounts.get_account(store_of(args), username) is None:
        raise CommandError(f"no user {username}")
    account = _update(args, password_hash=accounts.hash_password(read_password(args)))
    print(f"{account.username}: password set; earlier tokens no longer work")
    return 0
