"""Per-peer rate limits against a real listener: `--rate N/PERIOD` bounds the different items (plus
denied and not-found queries) a peer receives per period, repeats are free, and over it the consumer
is told when to retry and it is audited. The arithmetic (windows, the flood guard) is tested on a
fake clock in test_policy_units.py; these tests assume nothing about wall-clock speed."""

from __future__ import annotations

import json
import re

from runwrap.credential import Query
from runwrap.errors import NotFound, RateLimited
from runwrap.testing.listener import RunningListener

from .policy_support import open_channel


def test_200_back_to_back_runs_of_one_profile_all_succeed_under_the_default_rate():
    with RunningListener() as running:  # the default: 120/1m
        running.pair("build", ["*"])
        for run in range(200):  # each run its own session, as `make -j` or a test suite would open them
            channel = open_channel(running.home)
            try:
                channel.request(Query(domain="github.com"), ["password"]).wipe()
            except RateLimited as exc:
                raise AssertionError(f"run {run + 1} of one profile was rate limited: {exc.message}") from None
            finally:
                channel.close()
        decisions = {e["decision"] for e in running.audit_events() if e["event"] == "request"}
        assert decisions == {"allowed"}


def test_an_enumeration_is_limited_at_n_plus_one_and_exits_with_the_documented_status():
    with RunningListener(args=["--rate", "3/1m"]) as running:
        running.pair("probe", ["*"])
        channel = open_channel(running.home)
        try:
            for n in range(3):  # three different names the vault does not have: each counts
                try:
                    channel.request(Query(domain=f"guess{n}.invalid"), ["username"]).wipe()
                except NotFound:
                    pass
            try:
                channel.request(Query(domain="github.com"), ["username"])
                raise AssertionError("a fourth different item within the period was served")
            except RateLimited as exc:
                found = re.search(r"rate limit of 3 different items per 1m reached for peer probe; "
                                  r"retry in (\d+\.\d)s", exc.message)
                assert found and 0 < float(found.group(1)) <= 60.0, exc.message
        finally:
            channel.close()
        result = running.run("connect", "--domain", "github.com", "--output", "json", check=False)
        assert result.returncode == 4, result.stderr
        error = json.loads(result.stdout)["error"]
        assert error["code"] == "rate_limited" and re.search(r"retry in \d+\.\ds", error["message"])
        drained = running.run("run", "--domain", "github.com", "--env", "U=username", "--", "true", check=False)
        assert drained.returncode == 125 and "retry in" in drained.stderr
        events = [e for e in running.audit_events() if e["event"] == "request"]
        assert [e["decision"] for e in events] == ["not_found"] * 3 + ["rate_limited"] * 3
        assert all("retry in" in e["reason"] for e in events[3:])


def test_denied_probes_count_and_the_rate_is_per_peer(tmp_path):
    with RunningListener(args=["--rate", "2/1m"]) as running:
        running.pair("narrow", ["test.com"])
        other_env = {**running.env, "RUNWRAP_HOME": str(tmp_path / "second")}
        running.pair("other", ["*"], env=other_env)
        codes = [running.run("connect", "--domain", "github.com", check=False).returncode for _ in range(3)]
        assert codes == [4, 4, 4]  # two denied probes, then limited
        assert "rate limit of 2" in running.run("connect", "--domain", "test.com", check=False).stderr
        repeats = [running.run("connect", "--domain", "test.com", env=other_env, check=False).returncode
                   for _ in range(4)]
        assert repeats == [0, 0, 0, 0]  # the other peer, one item again and again
