"""Silence file descriptors around noisy native code.

TensorFlow, the TFLite converter (MLIR) and LiteRT print C++ INFO lines straight to fd 1 and fd 2,
around Python's ``sys.stdout``/``sys.stderr``, whatever ``TF_CPP_MIN_LOG_LEVEL`` says. A command's
stdout is for its result and stderr for its own progress and errors, so those calls run inside
:func:`fds_silenced`. Exceptions still propagate (with their messages) after the fds are restored.
Standard library only: the CLI uses it before anything heavy is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager


@contextmanager
def _fd_silenced(fd: int) -> Iterator[None]:
    (sys.stdout if fd == 1 else sys.stderr).flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


@contextmanager
def fds_silenced(*fds: int) -> Iterator[None]:
    """Send each of ``fds`` (default: 2, stderr) to /dev/null for the block."""
    with ExitStack() as stack:
        for fd in fds or (2,):
            stack.enter_context(_fd_silenced(fd))
        yield
