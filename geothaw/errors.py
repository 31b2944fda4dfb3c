"""One exception tree: the CLI turns any ``GeothawError`` into a one-line message and exit 1."""

from __future__ import annotations


class GeothawError(Exception):
    """Base class of every error geothaw raises on purpose."""


class ConfigError(GeothawError, ValueError):
    """A run configuration is invalid (unknown key, wrong type, impossible value, missing file)."""


class InputDataError(GeothawError, ValueError):
    """An input file is unreadable or does not satisfy the canonical-dataset contract."""


class CheckpointError(GeothawError):
    """A checkpoint is missing, corrupt, or not a plain ``state_dict`` (e.g. a pickled object)."""


class OutputError(GeothawError, OSError):
    """An output could not be written (full disk, quota, file-size limit); nothing partial is left behind."""
