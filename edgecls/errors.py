"""One exception type for problems the user can fix; the CLI prints it as one line."""


class EdgeclsError(Exception):
    """A user-facing error: bad input, missing data, unreadable file."""
