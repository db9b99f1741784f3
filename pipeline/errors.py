"""The one exception the CLI turns into a clear message and a non-zero exit."""


class CvmError(Exception):
    """Bad input or config: the message names the file, row or key and what was expected."""
