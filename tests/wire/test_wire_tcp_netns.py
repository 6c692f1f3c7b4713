"""TCP across two network namespaces made by this test: a listener in one, a consumer in the other,
joined by a veth pair with addresses of the test's own. Pair, fetch, then cut the link while a
request waits on a slow provider: the consumer fails clearly and starts no child; the listener
goes on serving."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.testing.listener import runwrap_executable
from tests.polling import wait_for

TAG = f"{os.getpid() % 100000}"
NS_LISTENER, NS_CONSUMER = f"rwl{TAG}", f"rwc{TAG}"
VETH_L, VETH_C = f"rwv{TAG}l", f"rwv{TAG}c"
SUBNET = 4 * (os.getpid() % 60)  # a /30 inside 10.231.0.0/24, per test process
ADDR_L, ADDR_C = f"10.231.0.{SUBNET + 1}", f"10.231.0.{SUBNET + 2}"
PORT = 47011
RUNWRAP = runwrap_executable()

SLOW_PROVIDER = """#!/usr/bin/env python3
import json, sys, time
query = json.load(sys.stdin)
if query.get("domain") == "slow.example":
    open(sys.argv[1], "w").close()  # tell the test the listener is now busy with this request
    time.sleep(15)
print(json.dumps({"username": "far", "password": "over-the-wire", "domain": query.get("domain")}))
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def link_up() -> None:
    ip("link", "add", VETH_L, "type", "veth", "peer", "name", VETH_C)
    ip("link", "set", VETH_L, "netns", NS_LISTENER)
    ip("link", "set", VETH_C, "netns", NS_CONSUMER)
    for ns, dev, addr in ((NS_LISTENER, VETH_L, ADDR_L), (NS_CONSUMER, VETH_C, ADDR_C)):
        ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
        ip("-n", ns, "link", "set", dev, "up")


@pytest.fixture
def namespaces() -> Iterator[None]:
    created = []
    try:
        for ns in (NS_LISTENER, NS_CONSUMER):
            ip("netns", "add", ns)
            created.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        link_up()
        yield
    finally:
        for ns in created:  # deleting a namespace deletes the veth end in it, and so the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def in_ns(ns: str, home: Path, *args: str, **kwargs):  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRAP_")}
    env["RUNWRAP_HOME"] = str(home)
    return subprocess.run(["ip", "netns", "exec", ns, RUNWRAP, *args], env=env, capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 60), **kwargs)


def test_tcp_across_namespaces_survives_a_cut_link(namespaces: None, tmp_path: Path) -> None:
    listener_home, consumer_home = tmp_path / "listener", tmp_path / "consumer"
    listener_home.mkdir(mode=0o700)
    consumer_home.mkdir(mode=0o700)
    provider = tmp_path / "slow-provider"
    provider.write_text(SLOW_PROVIDER)
    provider.chmod(0o755)
    busy = tmp_path / "busy"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRAP_")}
    env["RUNWRAP_HOME"] = str(listener_home)
    log = open(tmp_path / "listener.out", "wb")  # closed in finally
    listener = subprocess.Popen(
        ["ip", "netns", "exec", NS_LISTENER, RUNWRAP, "listen", "--provider", "command",
         "--provider-option", f"command={sys.executable} {provider} {busy}", "--provider-option", "timeout=60",
         "--tcp", f"{ADDR_L}:{PORT}"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: b"listening on" in (tmp_path / "listener.out").read_bytes(), 15, "the listener to start")
        invite = json.loads(subprocess.run([RUNWRAP, "invite", "--name", "far", "--scope", "*", "--output", "json"],
                                           env=env, capture_output=True, text=True, check=True, timeout=30).stdout)
        assert invite["address"] == f"tcp:{ADDR_L}:{PORT}"

        # The consumer's namespace cannot reach the listener's Unix socket... but it can reach TCP.
        paired = in_ns(NS_CONSUMER, consumer_home, "pair", invite["code"], "--address", invite["address"])
        assert paired.returncode == 0, paired.stderr
        got = in_ns(NS_CONSUMER, consumer_home, "connect", "--domain", "fast.example", "--output", "json")
        assert json.loads(got.stdout)["credential"]["password"] == "over-the-wire", got.stderr

        # A request that the provider holds for 15 s; cut the link while it waits.
        marker = tmp_path / "child-ran"
        cenv = {**{k: v for k, v in env.items()}, "RUNWRAP_HOME": str(consumer_home)}
        consumer = subprocess.Popen(
            ["ip", "netns", "exec", NS_CONSUMER, RUNWRAP, "run", "--domain", "slow.example", "--env", "P=password",
             "--", "touch", str(marker)], env=cenv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(busy.exists, 15, "the listener to start the slow lookup")
        cut = time.monotonic()
        ip("-n", NS_LISTENER, "link", "del", VETH_L)
        try:
            out, err = consumer.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            consumer.kill()
            out, err = consumer.communicate()
            raise AssertionError(f"the consumer still waited 40 s after the cut: {err!r}") from None
        took = time.monotonic() - cut
        print(f"consumer gave up {took:.1f}s after the link was cut: {err.strip()}")
        assert consumer.returncode == 125, (consumer.returncode, out, err)
        assert "connection to the listener broke" in err
        assert not marker.exists(), "a child was started without its credential"
        assert took < 30

        # The listener is still there and serves again once the link is back.
        assert listener.poll() is None
        link_up()
        again = in_ns(NS_CONSUMER, consumer_home, "connect", "--domain", "fast.example", "--output", "json")
        assert json.loads(again.stdout)["success"] is True, again.stderr
    finally:
        os.killpg(listener.pid, signal.SIGTERM)
        try:
            listener.wait(30)  # it may first finish the slow lookup it is running
        except subprocess.TimeoutExpired:
            os.killpg(listener.pid, signal.SIGKILL)
            listener.wait(10)
        log.close()
