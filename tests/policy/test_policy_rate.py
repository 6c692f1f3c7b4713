"""Per-peer rate limits: a token bucket; over it the consumer is told when to retry, and it is audited."""

from __future__ import annotations

import json
import re
import time

from runwrap.credential import Query
from runwrap.errors import RateLimited
from runwrap.testing.listener import RunningListener
from tests.polling import wait_for

from .policy_support import open_channel


def test_over_the_rate_connect_exits_4_with_the_retry_time_and_exec_125(tmp_path):
    with RunningListener(args=["--rate", "3/1m"]) as running:
        running.pair("busy", ["*"])
        channel = open_channel(running.home)
        try:
            for _ in range(3):  # the burst
                channel.request(Query(domain="github.com"), ["username"]).wipe()
            try:
                channel.request(Query(domain="github.com"), ["username"])
                raise AssertionError("a fourth request within the period was served")
            except RateLimited as exc:
                found = re.search(r"rate limit of 3 requests per 1m reached for peer busy; retry in (\d+\.\d)s",
                                  exc.message)
                assert found and 15.0 <= float(found.group(1)) <= 20.0, exc.message
        finally:
            channel.close()
        result = running.run("connect", "--domain", "github.com", "--output", "json", check=False)
        assert result.returncode == 4, result.stderr
        error = json.loads(result.stdout)["error"]
        assert error["code"] == "rate_limited" and re.search(r"retry in \d+\.\ds", error["message"])
        text = running.run("connect", "--domain", "github.com", check=False)
        assert text.returncode == 4 and "retry in" in text.stderr
        drained = running.run("run", "--domain", "github.com", "--env", "U=username", "--", "true", check=False)
        assert drained.returncode == 125 and "retry in" in drained.stderr
        events = [e for e in running.audit_events() if e["event"] == "request"]
        assert [e["decision"] for e in events] == ["allowed"] * 3 + ["rate_limited"] * 4
        assert all("retry in" in e["reason"] for e in events[3:])


def test_the_bucket_refills_evenly():
    with RunningListener(args=["--rate", "4/1s"]) as running:
        running.pair("quick", ["*"])
        channel = open_channel(running.home)
        try:
            for _ in range(4):
                channel.request(Query(domain="github.com"), ["username"]).wipe()
            try:
                channel.request(Query(domain="github.com"), ["username"])
                raise AssertionError("the burst was exceeded")
            except RateLimited as exc:
                assert re.search(r"retry in 0\.[1-3]s", exc.message), exc.message
            limited = time.monotonic()

            def served() -> bool:
                try:
                    channel.request(Query(domain="github.com"), ["username"]).wipe()
                    return True
                except RateLimited:
                    return False

            wait_for(served, timeout=2.0, what="a token to come back")
            assert time.monotonic() - limited < 1.0
        finally:
            channel.close()


def test_rate_is_per_peer_and_the_default_allows_a_burst_of_120(tmp_path):
    other_home = tmp_path / "second-consumer"
    with RunningListener(args=["--rate", "2/1m"]) as running:
        running.pair("first", ["*"])
        other_env = {**running.env, "RUNWRAP_HOME": str(other_home)}
        running.pair("second", ["*"], env=other_env)
        for env, name in ((running.env, "first"), (other_env, "second")):
            codes = [running.run("connect", "--domain", "test.com", env=env, check=False).returncode
                     for _ in range(3)]
            assert codes == [0, 0, 4], name
    with RunningListener() as running:  # the default: 120/1m
        running.pair("default", ["*"])
        channel = open_channel(running.home)
        try:
            for _ in range(120):
                channel.request(Query(domain="github.com"), ["username"]).wipe()
            try:
                channel.request(Query(domain="github.com"), ["username"])
                raise AssertionError("request 121 within a minute was served")
            except RateLimited as exc:
                assert "120 requests per 1m" in exc.message
        finally:
            channel.close()
