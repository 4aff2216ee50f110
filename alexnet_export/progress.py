"""Progress on stderr for long steps: a rich spinner on a terminal, nothing when piped or quiet."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Progress:
    """Announces steps on stderr.

    Args:
        quiet: print nothing.

    """

    def __init__(self, *, quiet: bool = False) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        # A copy of the terminal's fd, so steps still show while native code has fd 2 silenced
        # (``export`` imports TensorFlow on another thread while verify loads the runtimes); a
        # replaced sys.stderr is written to as it is.
        real = self.enabled and sys.stderr is sys.__stderr__
        self._stream = os.fdopen(os.dup(2), "w", buffering=1) if real else None

    @contextmanager
    def step(self, message: str) -> Iterator[None]:
        """Show ``message`` with a spinner while the block runs, then a line with its duration."""
        if not self.enabled:
            yield
            return
        from rich.console import Console

        console = Console(file=self._stream) if self._stream is not None else Console(stderr=True)
        start = time.perf_counter()
        with console.status(message):
            yield
        console.print(f"[green]done[/] {message} ({time.perf_counter() - start:.1f} s)", highlight=False)


QUIET = Progress(quiet=True)
