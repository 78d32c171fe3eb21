"""Errors that the command line reports as one clear line instead of a traceback."""


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2 unless given."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status
