"""Exception types for problems the user can fix; the CLI prints each as one line."""


class EdgeclsError(Exception):
    """A user-facing error: bad input, missing data, unreadable file. The CLI exits 1."""

    exit_code = 1


class UsageError(EdgeclsError):
    """The command cannot run as asked (a missing extra, a bad option). The CLI exits 2."""

    exit_code = 2


class FormatUnsupported(EdgeclsError):
    """The format cannot express this model (e.g. an op its runtime has no layer for): `--format all` lists it
    as skipped; named explicitly, it is the export's error."""


class ProofFailed(EdgeclsError):
    """A model file fails its golden check on this machine and was not allowed to answer. The CLI exits 1."""
