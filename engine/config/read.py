"""Read a rule file from disk, refusing what is no rule file before it costs anything.

Only a regular file is opened: a FIFO, device, socket or folder is refused after ``os.stat``, unopened,
and the open never blocks. Past ``MAX_FILE_BYTES`` a file is refused unread; its text must be UTF-8.
Every refusal carries its message and, when known, the line and column of the fault;
``read_rule_file`` returns it (and any ``OSError``) as a ``Problem`` naming the file, and raises nothing.
"""

from __future__ import annotations

import os
import stat

from engine.config.problems import Problem

#: The largest rule file, in bytes of UTF-8: 1 MiB. The shipped rule files and rule tests are under
#: 8 KiB; ruamel.yaml parses about 1 MiB a second, and reading on past this would let ``/dev/zero``
#: or a runaway file take the process's memory.
MAX_FILE_BYTES = 1 << 20

# How much of a file ``read_head`` reads to tell its kind from its first line.
_HEAD_BYTES = 4096
_OPEN_FLAGS: int = (
    os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


class _Unreadable(Exception):
    """A path that is not read as a rule file: why, and where in the file when that is known."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


def too_big(found: str) -> str:
    """Return the message for a file or text past ``MAX_FILE_BYTES``; ``found`` says by how much."""
    return f"expected a rule file of at most {MAX_FILE_BYTES} bytes (1 MiB), found {found}"


def _read_text(path: str) -> str:
    """Return the text of the regular file at ``path``, line ends as text mode reads them.

    Raises ``_Unreadable`` for no regular file, a file past ``MAX_FILE_BYTES`` or bytes that are not
    UTF-8 (at their line and column), and ``OSError`` when the system cannot read it.
    """
    fd, size = _open_regular(path)
    try:
        if size > MAX_FILE_BYTES:
            raise _Unreadable(too_big(f"{size} bytes"))
        data = _read_at_most(fd, MAX_FILE_BYTES)
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:  # grew since, or a size the system does not report
        raise _Unreadable(too_big("more"))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[data.rfind(b"\n", 0, exc.start) + 1 : exc.start].decode("utf-8", "replace")) + 1
        raise _Unreadable(f"expected UTF-8 text, found undecodable bytes ({exc.reason} at byte {exc.start})", line, column) from None
    # Line ends as a file opened in text mode reads them.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_rule_file(path: str, name: str) -> str | Problem:
    """Return the text of the rule file at ``path``, or the problem that kept it unread (``name`` names it)."""
    try:
        return _read_text(path)
    except _Unreadable as exc:
        return Problem(name, exc.line, exc.column, (), exc.message)
    except OSError as exc:
        return Problem(name, 1, 1, (), f"cannot read the file: {exc.strerror or exc}")


def read_head(path: str) -> str | None:
    """Return the start of the regular file at ``path`` (4 KiB at most), or None when it is no regular file.

    Bytes that are not UTF-8 read as U+FFFD; nothing else is opened, and nothing blocks.
    """
    try:
        fd, _ = _open_regular(path)
        try:
            return _read_at_most(fd, _HEAD_BYTES - 1).decode("utf-8", "replace")
        finally:
            os.close(fd)
    except (OSError, _Unreadable):
        return None


def _open_regular(path: str) -> tuple[int, int]:
    """Open the regular file at ``path`` without blocking; return its descriptor and size.

    Anything else is refused from ``os.stat`` without being opened, and checked again once open in
    case the path changed in between (a FIFO opened with ``O_NONBLOCK`` does not wait for a writer).
    """
    _check_regular(os.stat(path).st_mode)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        _check_regular(st.st_mode)
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def _check_regular(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    found = next((name for test, name in kinds if test(mode)), "a special file")
    raise _Unreadable(f"expected a regular file, found {found}")


def _read_at_most(fd: int, limit: int) -> bytes:
    """Return the file's first ``limit`` + 1 bytes at most (one more than allowed tells it is too big)."""
    chunks: list[bytes] = []
    left = limit + 1
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
