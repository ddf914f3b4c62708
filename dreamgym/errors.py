"""Exception types shared by every dreamgym subpackage."""


class DreamgymError(ValueError):
    """Bad input or a bad file: the message names the value and what was expected.

    The CLI turns it into a one-line message and a non-zero exit status.
    """


class CorruptFileError(DreamgymError):
    """A file on disk is truncated, unreadable or does not hold what its name promises."""
