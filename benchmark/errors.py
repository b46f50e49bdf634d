"""The one exception type for errors a user can cause and fix."""


class BenchmarkError(Exception):
    """A user-facing error: bad path, unknown name, bad config value, undecodable input.

    The command line prints its message as one line and exits with status 2; anything
    else that escapes is a bug and keeps its traceback.
    """
