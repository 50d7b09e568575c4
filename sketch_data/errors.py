"""The one exception type for problems in the user's data."""


class SketchDataError(ValueError):
    """Bad input data: the message names the file or CSV row and says how to fix it."""
