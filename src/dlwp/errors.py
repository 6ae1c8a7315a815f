"""Errors caused by the user's input; the CLI prints their message alone, without a traceback."""


class DlwpError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class ConfigError(DlwpError, ValueError):
    """A config key or value that cannot work."""


class DataMissingError(DlwpError, FileNotFoundError):
    """A dataset file is absent, corrupt or not what the task expects."""


class CheckpointError(DlwpError, ValueError):
    """A checkpoint path that does not exist, is not a dlwp checkpoint, or is for another task."""


class TrainingDivergedError(DlwpError, FloatingPointError):
    """The training loss became NaN or infinite: the run stops, and a sweep records the trial as failed."""


class StorageError(DlwpError, OSError):
    """A file of the run could not be written (disk full, file too large, read-only): the run stops,
    and what it had saved (its last complete checkpoint) is kept."""
