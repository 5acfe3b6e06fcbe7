"""The one error type of every dataset."""


class DatasetError(Exception):
    """A dataset that cannot be used: missing, empty, or laid out wrongly."""
