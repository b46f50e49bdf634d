"""The one exception type for errors a user can cause and fix, and the disk's refusals."""

from __future__ import annotations

import errno
from collections.abc import Iterator


class BenchmarkError(Exception):
    """A user-facing error: bad path, unknown name, bad config value, undecodable input.

    The command line prints its message as one line and exits with status 2; anything
    else that escapes is a bug and keeps its traceback.
    """


#: A full disk or quota, a read-only file system, no permission: the machine's answer to a
#: read or write, which the user fixes (free space, another folder), never a bug.
REFUSED_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception it was raised from or while handling, innermost last."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def refused_by_storage(error: BaseException) -> str | None:
    """``"<file>: No space left on device"`` where ``error`` (or a cause) is the disk refusing
    a file; else None. The command line turns such errors into one line and exit status 2."""
    for cause in causes(error):
        if isinstance(cause, OSError) and cause.errno in REFUSED_ERRNOS:
            # A copy or a rename names its target second: the file that could not be written.
            where = cause.filename2 or cause.filename
            return f"{where}: {cause.strerror}" if where else str(cause.strerror)
    return None
