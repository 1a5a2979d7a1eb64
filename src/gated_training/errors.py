"""Errors that name what failed: the file, the column, the parameter or the rule."""

from __future__ import annotations


class GatedTrainingError(Exception):
    """Base class for every error this package raises on purpose.

    A run that fails with one of these ends as ``failed`` with this message as its cause.
    """


class ConfigError(GatedTrainingError):
    """A parameter is missing, of the wrong type or outside its allowed range."""


class DataError(GatedTrainingError):
    """The input data cannot be read as a table (missing, empty, undecodable...)."""


class SuiteError(GatedTrainingError):
    """The expectation suite file is missing or malformed."""


class TrackingError(GatedTrainingError):
    """The MLflow tracking server cannot be reached or refused an operation."""


class RegistryError(GatedTrainingError):
    """The model registry is unreachable, inconsistent or holds unverifiable bytes."""


class ServingError(GatedTrainingError):
    """A serving request failed, or the InferenceService did not become ready."""
