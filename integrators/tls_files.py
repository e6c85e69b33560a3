"""TLS contexts built from files on disk, built again when a file changes.

A receiver's CA is replaced (the walkthrough's sink makes a new one at every start), a client
certificate is renewed: the gateway must not keep the first content it read until it
restarts. ``FileContext.get()`` is asked before every new connection; it reads the files (a
few KiB, far below the cost of the TLS handshake that follows) and builds a new context only
when their content differs from what the current one was built from.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

log = logging.getLogger("nce.tls")


class FileContext:
    """``build()`` makes an ``ssl.SSLContext`` from ``files`` (None entries are skipped)."""

    def __init__(self, build: Callable[[], ssl.SSLContext], files: dict[str, str | None], name: str = "") -> None:
        self.build = build
        self.files = {key: path for key, path in files.items() if path}
        self.name = name
        self.loads = 0  # contexts built (1 + reloads)
        self._context: ssl.SSLContext | None = None
        self._contents: dict[str, bytes] = {}

    def _read(self) -> dict[str, bytes]:
        contents = {}
        for key, path in self.files.items():
            try:
                with open(path, "rb") as handle:
                    contents[key] = handle.read()
            except OSError as exc:
                raise OSError(f"cannot read {key} {path}: {exc.strerror or exc}") from None
        return contents

    def changed(self) -> bool:
        """Whether the files now differ from those the current context was built from (False
        before the first build and while a file cannot be read: a rotation half done)."""
        if self._context is None:
            return False
        try:
            return self._read() != self._contents
        except OSError:
            return False

    def forget(self) -> None:
        """Build anew at the next ``get()`` (after a failed connection: the checks a build
        makes, such as a certificate's expiry, run again)."""
        self._context = None

    def get(self) -> ssl.SSLContext:
        """The current context; raises OSError or ssl.SSLError naming the file at fault."""
        contents = self._read()
        if self._context is None or contents != self._contents:
            context = self.build()
            if self._context is not None:
                log.info("TLS files of %s changed on disk (%s); new connections use them", self.name,
                         ", ".join(k for k in self.files if contents.get(k) != self._contents.get(k)),
                         extra={"event": "tls_files_reloaded", "integration": self.name})
            self._context, self._contents = context, contents
            self.loads += 1
        return self._context
