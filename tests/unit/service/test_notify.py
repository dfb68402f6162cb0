"""The systemd notify protocol against real AF_UNIX datagram sockets."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from syncd.service import notify
from syncd.service.notify import Notifier, Watchdog, watchdog_interval


class Listener:
    """A bound datagram socket standing in for systemd's notify socket."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value  # what NOTIFY_SOCKET would hold

    def receive(self, timeout: float = 2.0) -> str:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode()

    def pending(self, wait: float) -> list[str]:
        """Every datagram arriving within ``wait`` seconds."""
        got: list[str] = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                got.append(self.sock.recv(4096).decode())
            except TimeoutError:
                break
        return got


@pytest.fixture
def path_listener() -> Iterator[Listener]:
    # A short directory: socket paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="syncd-notify-") as tmp:
        path = os.path.join(tmp, "notify.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            yield Listener(sock, path)


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"syncd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        yield Listener(sock, "@" + name)


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest) -> Listener:
    return request.getfixturevalue(f"{request.param}_listener")


def test_ready_status_stopping_watchdog_arrive_exactly(listener: Listener) -> None:
    n = Notifier(listener.env_value)
    assert n.enabled

    n.ready()
    assert listener.receive() == "READY=1"
    n.ready(status="replicating 2 sources")
    assert listener.receive() == "READY=1\nSTATUS=replicating 2 sources"
    n.status("catching up: shop")
    assert listener.receive() == "STATUS=catching up: shop"
    n.stopping()
    assert listener.receive() == "STOPPING=1"
    n.watchdog()
    assert listener.receive() == "WATCHDOG=1"


def test_reloading_sends_monotonic_usec(listener: Listener) -> None:
    n = Notifier(listener.env_value)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    lines = listener.receive().split("\n")
    assert lines[0] == "RELOADING=1"
    key, _, value = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    assert len(lines) == 2


def test_send_keeps_field_order_and_flattens_newlines(path_listener: Listener) -> None:
    n = Notifier(path_listener.env_value)
    n.send(STATUS="two\nlines\r\nhere", ERRNO="5")
    assert path_listener.receive() == "STATUS=two lines  here\nERRNO=5"


def test_extend_timeout(path_listener: Listener) -> None:
    Notifier(path_listener.env_value).extend_timeout(90)
    assert path_listener.receive() == "EXTEND_TIMEOUT_USEC=90000000"


def test_socket_path_defaults_to_notify_socket_env(
    path_listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", path_listener.env_value)
    Notifier().ready()
    assert path_listener.receive() == "READY=1"


def test_no_socket_means_every_call_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)

    def no_socket(*args: object, **kwargs: object) -> None:
        raise AssertionError("a socket was opened without NOTIFY_SOCKET")

    monkeypatch.setattr(notify.socket, "socket", no_socket)
    n = Notifier()
    assert not n.enabled
    n.ready("x")
    n.reloading()
    n.stopping()
    n.watchdog()
    n.status("x")
    n.extend_timeout(1)
    n.send(FOO="bar")


@pytest.mark.parametrize("value", ["", "relative/path.sock", "@", "vsock:2:1234"])
def test_unusable_socket_values_disable_notifications(value: str) -> None:
    assert not Notifier(value).enabled


def test_send_failures_never_raise(tmp_path: os.PathLike[str]) -> None:
    missing = os.path.join(tmp_path, "nobody-listens.sock")
    Notifier(missing).ready()
    regular_file = os.path.join(tmp_path, "file")
    with open(regular_file, "w"):
        pass
    Notifier(regular_file).watchdog()
    Notifier("@syncd-nobody-" + uuid.uuid4().hex).stopping()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "<self>"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "500000"}, 0.25),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    env = {k: str(os.getpid()) if v == "<self>" else v for k, v in env.items()}
    assert watchdog_interval(env) == expected


def test_watchdog_interval_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 5.0
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval() is None


def test_watchdog_pings_only_while_checks_pass(path_listener: Listener) -> None:
    alive = threading.Event()
    alive.set()
    interval = 0.02
    dog = Watchdog(Notifier(path_listener.env_value), interval, alive.is_set)
    dog.start()
    try:
        pings = path_listener.pending(interval * 10)
        assert len(pings) >= 3
        assert set(pings) == {"WATCHDOG=1"}

        alive.clear()
        path_listener.pending(interval * 3)  # drain a beat that raced the switch
        assert path_listener.pending(interval * 10) == []

        alive.set()
        assert path_listener.receive() == "WATCHDOG=1"
    finally:
        dog.stop()
    path_listener.pending(interval * 2)
    assert path_listener.pending(interval * 10) == []


def test_watchdog_skips_beats_when_checks_raise(path_listener: Listener) -> None:
    calls = 0

    def broken() -> bool:
        nonlocal calls
        calls += 1
        raise RuntimeError("pipeline state unreadable")

    dog = Watchdog(Notifier(path_listener.env_value), 0.02, broken)
    dog.start()
    try:
        assert path_listener.pending(0.2) == []
    finally:
        dog.stop()
    assert calls >= 2


def test_watchdog_checks_at_once_and_stop_ends_the_thread(path_listener: Listener) -> None:
    dog = Watchdog(Notifier(path_listener.env_value), 60, lambda: True)
    dog.start()
    assert path_listener.receive(timeout=2) == "WATCHDOG=1"
    started = time.monotonic()
    dog.stop()
    assert time.monotonic() - started < 2
    assert not any(t.name == "syncd-watchdog" and t.is_alive() for t in threading.enumerate())


def test_watchdog_rejects_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        Watchdog(Notifier(""), 0, lambda: True)
