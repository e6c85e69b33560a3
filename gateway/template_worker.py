"""Template tests (``POST /v1/optimize/messages/test``) in a child process.

Compiling a template generates and compiles Python code: a large template takes seconds of CPU
and hundreds of MB, and any API role may ask for a test. On the event loop that stalls device
traffic; in the gateway's memory each distinct template stays in the compile cache. So tests
run in one child process (``spawn``: a fresh interpreter, no state shared with the gateway):

* **time**: a test that takes longer than ``timeout`` seconds is cut off, the child is killed
  and replaced (400 naming ``template``);
* **memory**: what compiling allocates stays in the child, which is replaced after
  ``max_tests`` tests, so its cache cannot grow without bound;
* **work**: one test at a time, at most ``max_waiting`` waiting; beyond that 429 at once.

Template size is bounded before any of this (``gateway.templates.MAX_TEMPLATE_CHARS``).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

log = logging.getLogger("nce.templates")

class TestRefused(Exception):
    """The test cannot be answered; ``status`` and ``field`` say how to answer."""

    def __init__(self, message: str, status: int, field: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def run_test(template: str, payload: bytes) -> tuple[str, Any]:
    """In the child: (``ok``, result) or (``template``|``payload``, message)."""
    from bcl import BclError, message_test

    from .templates import TemplateRefused, template_text

    try:
        _, parsed = template_text(template)
        return "ok", message_test(parsed, payload)
    except TemplateRefused as exc:
        return "template", str(exc)
    except BclError as exc:  # the payload does not fit the template: the 1NCE translator's message
        return "payload", str(exc)


class TemplateTester:
    def __init__(self, *, timeout: float = 10.0, max_tests: int = 64, max_waiting: int = 4) -> None:
        self.timeout = timeout
        self.max_tests = max_tests
        self.max_waiting = max_waiting
        self._pool: ProcessPoolExecutor | None = None
        self._waiting = 0
        self._lock = asyncio.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                             max_tasks_per_child=self.max_tests)
        return self._pool

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    async def test(self, template: str, payload: bytes) -> dict:
        if self._waiting >= self.max_waiting:
            raise TestRefused("too many template tests at once; try again shortly", 429, None)
        self._waiting += 1
        try:
            async with self._lock:  # one at a time: the timeout is the test's own time
                loop = asyncio.get_running_loop()
                try:
                    work = loop.run_in_executor(self._executor(), run_test, template, payload)
                    kind, value = await asyncio.wait_for(work, self.timeout)
                except TimeoutError:
                    self._kill()
                    log.warning("template test cut off", extra={"event": "template_test_timeout",
                                                                "chars": len(template), "seconds": self.timeout})
                    raise TestRefused(f"template: compiling and translating took longer than {self.timeout:g} s",
                                      400, "template") from None
                except BrokenProcessPool:
                    self._kill()
                    raise TestRefused("template: the test process ended unexpectedly", 400, "template") from None
        finally:
            self._waiting -= 1
        if kind == "ok":
            return value
        raise TestRefused(value, 400, kind)

    def close(self) -> None:
        self._kill()
