"""The systemd notify protocol (sd_notify(3)), written out by hand.

systemd passes the path of a datagram socket in ``NOTIFY_SOCKET``; the service sends
newline-separated ``KEY=value`` assignments to it, one datagram per message:

    READY=1              start-up is finished (Type=notify), or a reload is finished
    RELOADING=1          a reload began; must come with MONOTONIC_USEC=<CLOCK_MONOTONIC µs>
    STOPPING=1           shutdown began
    WATCHDOG=1           keep-alive for WatchdogSec=
    STATUS=<text>        one line shown by ``systemctl status``
    EXTEND_TIMEOUT_USEC  ask for more time in the current start/stop/reload phase

Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op, so the daemon calls these
unconditionally. Sending never raises: a lost notification must not stop replication.

`Watchdog` sends ``WATCHDOG=1`` from its own thread only while a health check passes, so
a wedged pipeline (threads alive but nothing moving) gets the service restarted by systemd.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

_log = logging.getLogger(__name__)


def _address(socket_path: str) -> str | None:
    """The AF_UNIX address for a ``NOTIFY_SOCKET`` value, or None if unusable.

    ``/path`` is a file system socket; ``@name`` an abstract one (Linux), whose address
    begins with a NUL byte. Other forms (relative paths, ``vsock:``) are not supported.
    """
    if socket_path.startswith("/"):
        return socket_path
    if socket_path.startswith("@") and len(socket_path) > 1:
        return "\0" + socket_path[1:]
    return None


def _one_line(value: object) -> str:
    """A value that cannot break the line-based protocol."""
    return str(value).replace("\r", " ").replace("\n", " ")


class Notifier:
    """Sends notifications to systemd; silently does nothing when not run by systemd."""

    def __init__(self, socket_path: str | None = None) -> None:
        if socket_path is None:
            socket_path = os.environ.get("NOTIFY_SOCKET")
        self.socket_path = socket_path or None
        self._address = _address(socket_path) if socket_path else None

    @property
    def enabled(self) -> bool:
        """True when there is a socket to send to."""
        return self._address is not None

    def send(self, **fields: object) -> None:
        """Send one datagram ``KEY=value\\nKEY=value`` (keyword order is kept).

        Newlines inside values are replaced by spaces. Failures are ignored.
        """
        if self._address is None or not fields:
            return
        payload = "\n".join(f"{key}={_one_line(value)}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(payload.encode("utf-8"), self._address)
        except OSError:
            return

    def ready(self, status: str | None = None) -> None:
        """Start-up (or a reload) is complete."""
        if status is None:
            self.send(READY="1")
        else:
            self.send(READY="1", STATUS=status)

    def reloading(self) -> None:
        """A reload began; ``ready()`` must follow when it is done."""
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send(RELOADING="1", MONOTONIC_USEC=str(monotonic_usec))

    def stopping(self) -> None:
        """Shutdown began."""
        self.send(STOPPING="1")

    def watchdog(self) -> None:
        """Watchdog keep-alive."""
        self.send(WATCHDOG="1")

    def status(self, text: str) -> None:
        """The one-line status ``systemctl status`` shows."""
        self.send(STATUS=text)

    def extend_timeout(self, seconds: float) -> None:
        """Ask systemd for ``seconds`` more in the current start/stop/reload phase.

        Useful when start-up legitimately takes long (e.g. waiting for a source server)
        and would otherwise hit TimeoutStartSec=. Repeat before the extension runs out.
        """
        self.send(EXTEND_TIMEOUT_USEC=str(max(0, int(seconds * 1_000_000))))


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """How often to send ``WATCHDOG=1``: half of ``WatchdogSec=``, in seconds.

    None when systemd set no watchdog, when ``WATCHDOG_PID`` names another process, or
    when the variables are malformed.
    """
    env = os.environ if environ is None else environ
    usec_text = env.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    pid_text = env.get("WATCHDOG_PID")
    if pid_text:
        try:
            if int(pid_text) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        usec = int(usec_text)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


class Watchdog:
    """Sends ``WATCHDOG=1`` every ``interval`` seconds while ``checks()`` returns True.

    ``checks`` runs in the watchdog thread; it should be cheap and must not block. If it
    returns False (or raises), that beat is skipped; systemd restarts the service once
    ``WatchdogSec=`` passes without a beat. The first check runs as soon as it starts.
    """

    def __init__(
        self, notifier: Notifier, interval: float, checks: Callable[[], bool]
    ) -> None:
        if interval <= 0:
            raise ValueError(f"watchdog interval must be positive, got {interval}")
        self._notifier = notifier
        self._interval = interval
        self._checks = checks
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the heartbeat thread (a daemon thread); a second call does nothing."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="syncd-watchdog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop beating and wait for the thread to end."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _healthy(self) -> bool:
        try:
            return bool(self._checks())
        except Exception:
            _log.warning("watchdog check raised; skipping this heartbeat", exc_info=True)
            return False

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._healthy() and not self._stop.is_set():
                self._notifier.watchdog()
            self._stop.wait(self._interval)
