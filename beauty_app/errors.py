"""Exceptions that a user can cause, mapped by the CLI and the GUI to one clear sentence."""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix (bad file, wrong argument, missing model).

    The message is one sentence meant for people; the CLI prints it and exits with status 2.
    """


class ImageLoadError(UserError):
    """An image file could not be decoded into an RGB picture; the message says why."""


class CatalogError(UserError):
    """A catalog, truth or ranking file is missing or malformed."""


class ModelError(UserError):
    """A model spec, checkpoint or pretrained weight file cannot be used."""


class IndexStoreError(UserError):
    """A catalog index is missing, corrupt, locked or incompatible with the requested model."""
