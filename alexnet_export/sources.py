"""Every weight source a command takes: the files ``converters`` reads, and TensorFlow checkpoints.

Checkpoints need TensorFlow's reader, which ``converters`` never imports; everything else goes to
:func:`converters.read_weights` unchanged.
"""

from __future__ import annotations

import os

from converters.arch import Architecture
from converters.weights import AlexNetWeights


def read_weights(
    path: str | os.PathLike[str],
    *,
    allow_cast: bool = False,
    check_finite: bool = True,
    arch: Architecture | None = None,
) -> AlexNetWeights:
    """Read weights from any accepted source (see :func:`converters.read_weights` and ``checkpoint``)."""
    from alexnet_export.checkpoint import checkpoint_prefix

    if checkpoint_prefix(path) is not None:
        from alexnet_export.checkpoint import read_checkpoint
        from alexnet_export.quiet import import_tensorflow

        import_tensorflow()
        return read_checkpoint(path, allow_cast=allow_cast, check_finite=check_finite, arch=arch)
    from converters import read_weights as read_file

    return read_file(path, allow_cast=allow_cast, check_finite=check_finite, arch=arch)
