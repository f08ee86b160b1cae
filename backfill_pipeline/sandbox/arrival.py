"""When a request reached the machine: the kernel's receive timestamp of its bytes.

The sandbox stands in for a dashboard on its own machine, so it judges politeness by when requests
arrive, not by when one of its threads got round to reading them: on a loaded machine the two
differ by tens of milliseconds, which would count the sandbox's own scheduling as our rudeness.
Linux stamps each received segment when asked (SO_TIMESTAMPNS on the listening socket, inherited
by accepted ones); the stamp comes back beside the bytes from recvmsg.
"""

from __future__ import annotations

import io
import socket
import struct
import sys
import time

# Linux's values; the socket module does not export them.
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
_TIMESPEC = struct.Struct("qq")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)
SUPPORTED = sys.platform.startswith("linux")


def stamp_arrivals(sock: socket.socket) -> bool:
    """Ask the kernel to stamp what `sock` (and the sockets it accepts) receives; False where it cannot."""
    if not SUPPORTED:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


class StampedSocketIO(io.RawIOBase):
    """A socket's raw reader that keeps the kernel's arrival time of the last bytes read."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.arrived: float | None = None

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._sock.fileno()

    def readinto(self, buffer) -> int:
        n, ancillary, _flags, _addr = self._sock.recvmsg_into([buffer], _ANCILLARY)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
                self.arrived = seconds + nanoseconds / 1e9
        return n


def stamped_reader(sock: socket.socket, buffer_size: int) -> tuple[StampedSocketIO, io.BufferedReader]:
    """A buffered reader over `sock` whose raw part keeps arrival times (closing it leaves `sock` open)."""
    raw = StampedSocketIO(sock)
    return raw, io.BufferedReader(raw, buffer_size)


def arrival_or_now(raw: StampedSocketIO | None) -> float:
    """The kernel's arrival time of the last bytes `raw` read, or now where there is none."""
    if raw is not None and raw.arrived is not None:
        return raw.arrived
    return time.time()
