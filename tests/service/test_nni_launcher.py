"""NNI managers started through service/nni_launcher.py listen on loopback only (NNI 3.0 itself
listens on every interface); the launcher's errors are its own, one line each."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from nni_runner import finished_experiment, tiny_config

from service.nni_launcher import LaunchError, create_experiment, free_port_from

pytestmark = pytest.mark.nni


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on ``port`` (Linux's /proc/net/tcp*)."""
    found = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # The kernel prints each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                family = socket.AF_INET if width == 8 else socket.AF_INET6
                found.add(socket.inet_ntop(family, words))
    return found


def test_a_started_manager_listens_on_loopback_only(tmp_path: Path) -> None:
    # Its own experiment: the session's shared one may already be stopped by another test.
    with finished_experiment(tmp_path, tiny_config(max_trials=1, epochs=1), timeout=300) as exp:
        addresses = listening_addresses(exp.port)
    assert addresses == {"127.0.0.1"}, addresses


def test_listening_addresses_sees_a_wildcard_bind() -> None:
    # The probe itself must be able to fail: a socket on every interface reads as 0.0.0.0.
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        assert listening_addresses(s.getsockname()[1]) == {"0.0.0.0"}


def test_nnictl_failure_is_a_launch_error_with_its_last_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("searchSpace: {}\ntrialCommand: 'true'\ntrialConcurrency: 0\n")
    port = free_port_from("127.0.0.1", 18080)
    with pytest.raises(LaunchError, match=r"nnictl create --config .* failed"):
        create_experiment(bad, port, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
