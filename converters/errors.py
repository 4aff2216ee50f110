"""The exception hierarchy shared by every stage of the toolkit.

Every error a user can cause derives from :class:`InputError`; the CLI prints its message as one
line and exits with status 2. Messages name the file, layer or option, what was expected and what
was received.
"""

from __future__ import annotations


class AlexNetExportError(Exception):
    """Base class of every error raised on purpose by this toolkit."""


class InputError(AlexNetExportError):
    """Bad input from the user: a file, a layer, an option or an output path (exit status 2)."""


class WeightsError(InputError):
    """A weight file or weight set does not match the AlexNet architecture."""


class UnsafePickleError(WeightsError):
    """A pickle asked for something that is not needed to rebuild arrays, lists, tuples and dicts."""


class OutputExistsError(InputError):
    """The output path exists and ``--force`` was not given."""
