"""The one error type of every dataset."""
from manifests.errors import UserError


class DatasetError(UserError):
    """A dataset that cannot be used: missing, empty, or laid out wrongly."""
