"""A Dask scheduler's address, read and reached before Dask is asked to: a malformed address is
refused at once, a host that does not exist, a closed port or a service that is not a scheduler
in one line as soon as the network says so, and never after the run has started.

Dask's own client takes an address it cannot parse, or a peer that answers with other bytes than
a scheduler's, as an error of its own; its half-opened client then waits twice its timeout on
the way out and prints a traceback. Everything that can be known here without Dask is.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

from sce.errors import OptionDataProblem, OptionProblem

#: The schemes Dask's client connects by (``inproc://`` lives in another process's memory).
SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
EXAMPLE = "e.g. tcp://10.0.0.5:8786"
#: A scheduler greets a new connection with its handshake, a frame of a few dozen bytes whose
#: length comes first as 8 little-endian bytes: a longer greeting is another service's bytes.
MOST_HANDSHAKE_BYTES = 1 << 20
#: Seconds a peer may stay silent before it is asked as a web server is: a scheduler greets at once.
QUIET_SECONDS = 1.0


@dataclass(frozen=True)
class SchedulerAddress:
    """An address as Dask's client reads it: scheme, host and port."""

    text: str
    scheme: str
    host: str
    port: int

    @property
    def spelled(self) -> str:
        """The address as Dask reads it, scheme included."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def scheduler_address(text: str) -> SchedulerAddress:
    """The address ``text`` names, or :class:`~sce.errors.OptionProblem` saying what is wrong with it.

    Examples
    --------
    >>> scheduler_address("10.0.0.5:8786")
    SchedulerAddress(text='10.0.0.5:8786', scheme='tcp', host='10.0.0.5', port=8786)
    >>> scheduler_address("tcp://[::1]:8786").host
    '::1'
    >>> scheduler_address("tcp://nowhere")
    Traceback (most recent call last):
    ...
    sce.errors.OptionProblem: scheduler: 'tcp://nowhere' is not a scheduler's address (missing port number ...
    """
    stripped = text.strip()
    if not stripped:
        raise OptionProblem("scheduler", "the address is empty; give the scheduler's, e.g. tcp://10.0.0.5:8786")
    scheme, separator, place = stripped.partition("://")
    if not separator:
        scheme, place = "tcp", stripped
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        _refuse(text, _unknown_scheme(scheme))
    host, colon, port = place.rpartition(":") if not place.endswith("]") else ("", "", "")
    if not colon or not port:
        _refuse(text, f"missing port number in address {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(character in host for character in "/[] "):
        _refuse(text, f"no host before the port {port}")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        _refuse(text, f"the port {port!r} is not a number from 1 to 65535")
    return SchedulerAddress(text, scheme, host, int(port))


def _unknown_scheme(scheme: str) -> str:
    if scheme in ("http", "https"):
        return f"{scheme}:// is a web page's, such as the dashboard's; a scheduler's begins with tcp://"
    if scheme == "inproc":
        return "inproc:// names a scheduler inside another program's memory, which sce cannot reach"
    return f"unknown scheme {scheme}://; Dask's are {', '.join(s + '://' for s in SCHEMES)}"


def _refuse(text: str, why: str) -> None:
    raise OptionProblem("scheduler", f"{text!r} is not a scheduler's address ({why}); {EXAMPLE}")


def reach(address: SchedulerAddress, seconds: float) -> None:
    """Raise :class:`~sce.errors.OptionDataProblem` in one line where no scheduler can answer at
    ``address``: a host no name server knows, a closed port, no answer within ``seconds``, or
    (over tcp://) a peer whose first bytes are not a scheduler's greeting."""
    if address.scheme == "ucx":  # its own transport, which only Dask speaks
        return
    deadline = time.monotonic() + seconds
    found = _resolved(address, seconds)
    try:
        connection = socket.create_connection(found, timeout=max(0.1, deadline - time.monotonic()))
    except ConnectionRefusedError:
        _unanswered(address, f"(connection refused: nothing listens on port {address.port} of {address.host})")
    except TimeoutError:
        _unanswered(address, f"within {seconds:g} s (the host does not answer)")
    except OSError as error:
        _unanswered(address, f"({error.strerror or error})")
    with connection:
        if address.scheme == "tcp":
            _greeted(address, connection, deadline, seconds)


def _resolved(address: SchedulerAddress, seconds: float) -> tuple[str, int]:
    """The host's first address, looked up in a thread: a name server that does not answer
    would otherwise hold the run longer than ``seconds``."""
    found: list[tuple[str, int] | BaseException] = []

    def look_up() -> None:
        try:
            info = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
            found.append((str(info[0][4][0]), int(info[0][4][1])))
        except OSError as error:
            found.append(error)

    thread = threading.Thread(target=look_up, daemon=True)
    thread.start()
    thread.join(seconds)
    if not found:
        _unanswered(address, f"within {seconds:g} s (no name server answers for {address.host})")
    if isinstance(found[0], BaseException):
        _unanswered(address, f"(no host named {address.host} is known here)")
    return found[0]  # type: ignore[return-value]


def _greeted(address: SchedulerAddress, connection: socket.socket, deadline: float, seconds: float) -> None:
    """A scheduler greets first; a web server (the dashboard's port, say) waits to be asked,
    so a silent peer is asked, on this connection of the check's own, as a browser would."""
    connection.settimeout(min(QUIET_SECONDS, max(0.1, deadline - time.monotonic())))
    greeting = b""
    try:
        try:
            greeting = connection.recv(8)
        except TimeoutError:
            connection.sendall(b"GET / HTTP/1.0\r\n\r\n")
            connection.settimeout(max(0.1, deadline - time.monotonic()))
            greeting = connection.recv(8)
        while 0 < len(greeting) < 8:
            chunk = connection.recv(8 - len(greeting))
            if not chunk:
                break
            greeting += chunk
    except TimeoutError:
        _not_a_scheduler(address, f"it says nothing within {seconds:g} s")
    except OSError as error:
        _not_a_scheduler(address, f"it closed the connection: {error.strerror or error}")
    if greeting.startswith(b"HTTP/"):
        _not_a_scheduler(address, "it is a web server, such as the dashboard")
    if len(greeting) < 8:
        _not_a_scheduler(address, "it closed the connection without a word")
    if not 0 < struct.unpack("<Q", greeting)[0] <= MOST_HANDSHAKE_BYTES:
        _not_a_scheduler(address, f"its first bytes are {greeting!r}")


def _unanswered(address: SchedulerAddress, why: str) -> None:
    raise OptionDataProblem(
        "scheduler",
        f"no Dask scheduler answers at {address.text} {why}; start one (dask scheduler) or check the address",
    )


def _not_a_scheduler(address: SchedulerAddress, why: str) -> None:
    raise OptionDataProblem(
        "scheduler",
        f"what answers at {address.text} is not a Dask scheduler ({why}); "
        "check the address: a scheduler listens on port 8786 unless told otherwise",
    )
