"""Users of the management API: roles, who may change whom, passwords.

Shared by the CLI (``nce-gateway users ...``) and the API (``/management-api/v1/users``).

Roles (SPEC §7): **Owner** does everything and assigns every role; **Admin** manages and
administers users of role User only; **User** manages (SIMs, integrations, inspector);
**API** is the account for scripts: the same management rights as User, no user
administration. The CLI works on the store file directly and has Owner rights.
"""

from __future__ import annotations

import functools
import re
import secrets

import argon2

from inspector.accounts import ROLES

OWNER, ADMIN, USER, API = ROLES

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")

# argon2id with the library's defaults (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4):
# about 0.35 s per check on a 2-core machine, which is why logins are rate limited and
# checked one at a time (see gateway.api.auth).
_hasher = argon2.PasswordHasher()


class PolicyError(Exception):
    """A change the acting user may not make (HTTP 403), or input that is not acceptable (400)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


def normalise_username(username: str) -> str:
    """User names are e-mail addresses, compared without case."""
    name = username.strip().lower()
    if not _EMAIL.match(name) or len(name) > 254:
        raise PolicyError(f"{username!r} is not an e-mail address", 400)
    return name


def check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise PolicyError(f"a password needs {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters", 400)


def hash_password(password: str) -> str:
    check_password(password)
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> tuple[bool, str | None]:
    """(matches, new hash if the stored one uses outdated parameters). Blocking: ~0.35 s."""
    try:
        _hasher.verify(password_hash, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False, None
    if _hasher.check_needs_rehash(password_hash):
        return True, _hasher.hash(password)
    return True, None


@functools.cache
def dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so that answering "no such user"
    costs as long as "wrong password" (no user enumeration through timing)."""
    return _hasher.hash(secrets.token_urlsafe(16))


def check_role(role: str) -> str:
    if role not in ROLES:
        raise PolicyError(f"unknown role {role!r}; roles: {', '.join(ROLES)}", 400)
    return role


def may_assign(actor_role: str, role: str) -> bool:
    """Owner assigns every role; Admin assigns only User."""
    return actor_role == OWNER or (actor_role == ADMIN and role == USER)


def may_administer(actor_role: str, target_role: str) -> bool:
    """Whether ``actor_role`` may change (disable, enable, reset, re-role) a user of ``target_role``."""
    return actor_role == OWNER or (actor_role == ADMIN and target_role == USER)


def check_create(actor_role: str, role: str) -> None:
    check_role(role)
    if not may_assign(actor_role, role):
        raise PolicyError(f"a user of role {actor_role} cannot create a user of role {role}")


def check_change(actor_role: str, target_role: str, new_role: str | None) -> None:
    if not may_administer(actor_role, target_role):
        raise PolicyError(f"a user of role {actor_role} cannot change a user of role {target_role}")
    if new_role is not None:
        check_role(new_role)
        if not may_assign(actor_role, new_role):
            raise PolicyError(f"a user of role {actor_role} cannot assign the role {new_role}")
