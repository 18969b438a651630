"""Network namespaces for the tests of issue #17's "three machines, on one": each node in
its own namespace (`ip netns add` + a veth pair, iproute2), reaching the host's services
(PostgreSQL, the object store, a download server) only over the address of its link.

Needs root and iproute2; a test using these fails saying so otherwise.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import services


@dataclass
class Namespace:
    name: str
    host_address: str  # the host's end of the link: where PostgreSQL listens for it
    address: str  # the namespace's end: where its node's API listens


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"`ip {' '.join(args)}` failed: {done.stderr.strip()} (network namespaces need "
            "root and iproute2: apt-get install iproute2)",
            pytrace=False,
        )


@contextlib.contextmanager
def network_namespaces(count: int = 3, routed: bool = False) -> Iterator[list[Namespace]]:
    """`count` namespaces, each linked to the host by a veth pair on its own /24; `routed`:
    with a default route via the host, so that every host address (a download server's,
    one PostgreSQL address handed to all) is reachable from each, as on a LAN."""
    if shutil.which("ip") is None:
        pytest.fail("`ip` not found: install the Debian package iproute2", pytrace=False)
    # fresh names each time: a namespace deleted by the test before may linger a moment
    tag = f"p{os.getpid() % 100000}{random.randrange(256):02x}"
    octet = random.randint(100, 250)
    made: list[Namespace] = []
    try:
        for i in range(1, count + 1):
            ns = Namespace(f"{tag}n{i}", f"10.{octet}.{i}.1", f"10.{octet}.{i}.2")
            host_end, ns_end = f"{tag}h{i}", f"{tag}v{i}"
            ip("netns", "add", ns.name)
            made.append(ns)
            ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            ip("link", "set", ns_end, "netns", ns.name)
            ip("addr", "add", f"{ns.host_address}/24", "dev", host_end)
            ip("link", "set", host_end, "up")
            ip("-n", ns.name, "addr", "add", f"{ns.address}/24", "dev", ns_end)
            ip("-n", ns.name, "link", "set", ns_end, "up")
            ip("-n", ns.name, "link", "set", "lo", "up")
            if routed:
                ip("-n", ns.name, "route", "add", "default", "via", ns.host_address)
        yield made
    finally:
        for ns in made:  # the veth pair goes with its namespace
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, check=False)


@contextlib.contextmanager
def postgres_on_links(namespaces: list[Namespace]) -> Iterator[services.PostgresServer]:
    """A private PostgreSQL listening on the host's end of every link."""
    subnet = ".".join(namespaces[0].host_address.split(".")[:2]) + ".0.0/16"
    server = services.PostgresServer(
        Path(tempfile.mkdtemp(prefix="podium-pg-")),
        (f"host all all {subnet} trust",),
        listen=",".join(["127.0.0.1", *(ns.host_address for ns in namespaces)]),
    )
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
