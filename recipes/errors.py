"""Exceptions raised by the recipes.

One contract for waiting: ``acquire(timeout=...)`` returns ``False`` when it gives up (timeout, cancel,
non-blocking miss); exceptions are kept for misuse and for facts the caller must not ignore.
"""

from __future__ import annotations


class RecipeError(Exception):
    """Base class of every error raised by :mod:`recipes`."""


class ClientNotStartedError(RecipeError):
    """The kazoo client was never started (or was stopped); call ``client.start()`` first."""


class AlreadyHeldError(RecipeError):
    """The holder called ``acquire`` again on a lock that was not created with ``reentrant=True``."""


class NotHeldError(RecipeError):
    """A guarded operation was requested while this object does not (trustworthily) hold ownership."""


class OwnershipLostError(RecipeError):
    """A guarded write was rejected by the server because our lock/leader node is gone."""


class CancelledError(RecipeError):
    """``with lock:`` could not enter because the acquisition was cancelled from another thread."""
