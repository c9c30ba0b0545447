"""Errors of the data layer, in a module that imports nothing (the readers and soda.data.streams both raise them)."""


class EmptySplitError(ValueError):
    """The requested split of a data set holds no images (e.g. no held-out file in a one-image folder)."""
