"""Typed storage errors. The service maps each to one HTTP status in one place."""

from __future__ import annotations


class StorageError(Exception):
    """Base class: every error raised out of ``storage`` is one of these."""


class NotFound(StorageError):
    """The requested experiment, trial, model or data set is not in the database."""


class Conflict(StorageError):
    """A write collided with existing data (e.g. a unique key)."""


class StorageUnavailable(StorageError):
    """The database cannot be reached or answered with an operational error."""


class InvalidValue(StorageError):
    """A query value is outside what is allowed (names the value and the allowed range)."""


class SourceError(StorageError):
    """An NNI source (registry, REST API, nni.sqlite) could not be read."""
