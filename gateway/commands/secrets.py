"""``nce-gateway secrets-key``: make a key that encrypts the store's secrets at rest."""

from __future__ import annotations

import argparse

from inspector.secretbox import new_key


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "secrets-key", help="print a new key for encrypting the store's secrets (NCE_SECRETS_KEY)",
        description="Print a new random key (32 bytes, URL-safe base64). Give it to the gateway as "
                    "NCE_SECRETS_KEY or in the file named by [store] secrets_key_file; the store's signing "
                    "keys, PSKs, webhook header values and AWS external ids are then kept encrypted. Keep the "
                    "key away from the store and its backups (docs/operations.md).")
    parser.set_defaults(func=print_key)


def print_key(args: argparse.Namespace) -> int:
    print(new_key())
    return 0
