"""Keep native code quiet and lean: silence its file descriptors, hand its freed memory back.

TensorFlow, the TFLite converter (MLIR) and LiteRT print C++ INFO lines straight to fd 1 and fd 2,
around Python's ``sys.stdout``/``sys.stderr``, whatever ``TF_CPP_MIN_LOG_LEVEL`` says. A command's
stdout is for its result and stderr for its own progress and errors, so those calls run inside
:func:`fds_silenced`. Exceptions still propagate (with their messages) after the fds are restored.
:func:`release_memory` trims the heap between export steps. :func:`import_tensorflow` imports
TensorFlow with its start-up lines silenced, from any thread.
Standard library only: the CLI uses it before anything heavy is imported.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import Future

_LOCK = threading.Lock()
_HELD: dict[int, tuple[int, int]] = {}  # fd -> (blocks silencing it, the real fd saved by the first)


@contextmanager
def _fd_silenced(fd: int) -> Iterator[None]:
    """``fd`` to /dev/null while any thread is inside such a block; the real one back when the last leaves.

    Counted under a lock: ``export`` imports TensorFlow on a second thread while LiteRT may silence the
    same fd on the first, and two plain save/restore pairs ending out of order would leave it silenced.
    """
    with _LOCK:
        count, saved = _HELD.get(fd, (0, -1))
        if count == 0:
            (sys.stdout if fd == 1 else sys.stderr).flush()
            saved = os.dup(fd)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        _HELD[fd] = (count + 1, saved)
    try:
        yield
    finally:
        with _LOCK:
            count, saved = _HELD[fd]
            if count == 1:
                os.dup2(saved, fd)
                os.close(saved)
                del _HELD[fd]
            else:
                _HELD[fd] = (count - 1, saved)


@contextmanager
def fds_silenced(*fds: int) -> Iterator[None]:
    """Send each of ``fds`` (default: 2, stderr) to /dev/null for the block."""
    with ExitStack() as stack:
        for fd in fds or (2,):
            stack.enter_context(_fd_silenced(fd))
        yield


def release_memory(*, collect: bool = True) -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Between export steps this keeps one step's freed buffers from adding to the next step's peak RSS.
    ``collect=False`` only trims: for a thread whose objects go without a collection, while another thread
    may be importing TensorFlow (a collection then walks all it has made so far, holding the GIL).
    """
    if collect:
        gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


_IMPORTING = threading.Lock()


def import_tensorflow() -> None:
    """Import TensorFlow with its start-up chatter silenced.

    TF 2.21 writes INFO lines (oneDNN, CUDA probing) to fd 2 before absl logging is initialised,
    whatever ``TF_CPP_MIN_LOG_LEVEL`` says; a command's stderr is for its own progress and errors.
    An import failure still raises after stderr is restored. Safe from two threads at once: ``export``
    imports on a second thread while verify loads the runtimes, and a step that needs TensorFlow on the
    main thread then waits for that import instead of taking the half-imported module from ``sys.modules``.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ ERROR lines too (cuInit on GPU-less hosts)
    with _IMPORTING:
        if "tensorflow" in sys.modules:
            return
        # The import makes ~270,000 long-lived objects. The collector stays off while it runs (the collections
        # it would trigger walk them all), and they are then frozen out of its view, so the collections that
        # free each export step's buffers do not walk them either (benchmarks/tf_import.py).
        collecting = gc.isenabled()
        gc.disable()
        try:
            with fds_silenced(2):
                import tensorflow
        finally:
            gc.freeze()
            if collecting:
                gc.enable()
        tensorflow.get_logger().setLevel("ERROR")  # deprecation notices from tf2onnx's use of TF1 APIs


def import_tensorflow_in_background() -> Future[None]:
    """:func:`import_tensorflow` on a thread of its own; the caller waits for it before it reports an error.

    Most of the import holds the GIL: it runs best beside work that does not (``export`` starts it as
    verify loads the runtimes).
    """
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1, thread_name_prefix="alexnet-export-import")
    try:
        return pool.submit(import_tensorflow)
    finally:
        pool.shutdown(wait=False)
