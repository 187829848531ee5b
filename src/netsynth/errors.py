"""The one exception type a user sees as a one-line message (the CLI prints it and exits non-zero)."""


class NetsynthError(Exception):
    """A problem with the user's input or settings, stated in one line that names the file and the problem."""
