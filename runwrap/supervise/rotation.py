"""Following a change of the credentials while the child runs: `on_change` (docs/rotation.md).

The lease brings an `Update` (launch.py): the complete next values. What happens to it:

- `none`: it is wiped at once; the child keeps the values it started with.
- `exit`: the child's tree is stopped as at a timeout (TERM, KILL after kill_grace) and runwrap
  exits 125 with a line saying why.
- `signal`: the new values are masked, the files are rewritten in place (a memfd's reader sees the
  new content at its next read), then the signal is sent to the child, once. The previous values
  are wiped right after, and the listener told (ROTATED) — unless a changed value reached the child
  only through its environment, which no running process can be given anew: then runwrap says so,
  the child keeps that old value, the previous values stay (masked, wiped at the end) and no ROTATED
  is sent, so the listener does not revoke what the child still uses.
- `restart`: the whole tree is stopped (as at exit), and once it is gone and reaped the files are
  rewritten and the same command starts with the new values; then the previous values are wiped
  and ROTATED sent. Restarts never overlap: a change that arrives while one is under way (or waits
  for its backoff) replaces the waiting values, and both changes are acknowledged by the one
  restart. `Backoff` spaces them out and bounds them; past the limit runwrap ends the run (125).

The old and the new values are both masked from the change on (each masker gets the new ones,
`Masker.add`); the masker's copies are wiped at the end of the run with it.

`Following` is the supervisor's half that follows changes: supervisor.run adds it for an
on_change other than none, so the common run never loads this module.
"""

from __future__ import annotations

import time

from runwrap.durations import format_duration
from runwrap.errors import CredentialsChanged
from runwrap.secret import Secret, wipe_bytes
from runwrap.supervise import reaper
from runwrap.supervise.launch import Launch, OnChange, Update
from runwrap.supervise.signals import STOPS, kill
from runwrap.supervise.streams import Stream

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal

    from runwrap.supervise.child import Plan
    from runwrap.supervise.mask import Masker
    from runwrap.supervise.signals import SignalFd
else:
    import _signal as signal  # not signal.py's enums: see runwrap.supervise.signals

# A signal that ends a run: sent to runwrap while a restart is under way, it cancels the restart
# and the run ends with the stopped child's status (its own death by that signal, as a rule).
ENDING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


class Backoff:
    """When the next restart may start, and whether one more fits the limit; the clock is passed in."""

    def __init__(self, policy: OnChange) -> None:
        self.policy = policy
        self.starts: list[float] = []  # restarts within the last window

    def _recent(self, now: float) -> list[float]:
        self.starts = [t for t in self.starts if now - t < self.policy.window]
        return self.starts

    def due(self, now: float) -> float:
        """The first restart of a window goes at once; the n-th waits first * 2**(n-2) after the last."""
        recent = self._recent(now)
        if not recent:
            return now
        return max(now, recent[-1] + min(self.policy.cap, self.policy.first * 2.0 ** (len(recent) - 1)))

    def exceeded(self, now: float) -> bool:
        return len(self._recent(now)) >= self.policy.limit

    def started(self, now: float) -> None:
        self._recent(now).append(now)


class Rotation:
    """The state of following changes: the values waiting for a restart, the changes to acknowledge,
    the values kept until the end, and why the run ends if a change ends it."""

    def __init__(self, policy: OnChange) -> None:
        self.policy = policy
        self.backoff = Backoff(policy)
        self.pending: Update | None = None  # the next child's values, for a restart
        self.coalesced: list[int] = []  # seqs of changes the pending one replaced
        self.restart_at: float | None = None  # when the waiting restart begins (backoff)
        self.stopping = False  # the child's tree is being stopped for a restart
        self.ended: str | None = None  # the run ends because of a change: the line to say
        self.kept: list[Secret] = []  # previous values a running child may still hold; wiped at the end

    def arrived(self, update: Update, now: float) -> str:
        """What the supervisor does now: "ignore", "stop" (the run ends), "signal", or "wait" (a restart)."""
        mode = self.policy.mode
        if mode == "none":
            update.wipe()
            return "ignore"
        if update.error is not None or mode == "exit":
            self.ended = (f"the credentials changed, but the new values cannot be used: {update.error}"
                          if update.error is not None else
                          "the credentials changed and on_change is exit: the child was stopped"
                          " — run again for the new values")
            update.wipe()
            self.cancel()
            return "stop"
        if mode == "signal":
            return "signal"
        if self.pending is not None:
            self.coalesced.append(self.pending.seq)
            self.pending.wipe()
        self.pending = update
        if self.stopping:
            return "wait"  # the restart under way takes these values instead
        if self.backoff.exceeded(now):
            policy = self.policy
            self.ended = (f"the credentials changed again after {policy.limit} restarts within"
                          f" {format_duration(policy.window)}, the limit of on_change: restart: stopping"
                          " — find out what changes them so often")
            self.cancel()
            return "stop"
        if self.restart_at is None:
            self.restart_at = self.backoff.due(now)
        return "wait"

    def due(self, now: float) -> bool:
        """Whether the waiting restart begins now (then the child's tree is to be stopped)."""
        if self.restart_at is None or now < self.restart_at or self.stopping:
            return False
        self.restart_at, self.stopping = None, True
        return True

    def cancel(self) -> None:
        """No restart after all (the run ends): the waiting values are wiped."""
        if self.pending is not None:
            self.pending.wipe()
        self.pending, self.restart_at, self.stopping = None, None, False

    def keep(self, values: list[Secret]) -> None:
        self.kept.extend(values)

    def wipe(self) -> None:
        self.cancel()
        for value in self.kept:
            value.wipe()
        self.kept.clear()

    def finish(self) -> None:
        """At the end of the run: if a change ended it, raise its error (exit 125)."""
        if self.ended is not None:
            raise CredentialsChanged(self.ended)


def values_of(launch: Launch) -> list[Secret]:
    """Every value the launch's child is given: the ones to mask and the environment's."""
    return [*launch.secrets, *(v for v in launch.env.values() if isinstance(v, Secret))]


class Following:
    """The supervisor's half that follows changes: a base of the supervisor of a run whose on_change
    is not none (supervisor.run), over supervisor.Supervisor's hooks under "following changes"."""

    launch: Launch
    rotation: Rotation
    pid: int
    status: int | None
    streams: list[Stream]
    piped: list[tuple[Stream, tuple[int, ...]]]  # the pipe streams, with the child fds each one serves
    plan: Plan  # how the child is started: each restart's child gets the same, with new pipes
    sigfd: SignalFd
    termed: set[int]
    kill_at: float | None
    kill_by: float | None
    child_stopped: bool
    timed_out: bool
    revoked: str | None

    if TYPE_CHECKING:
        def _terminate(self, grace: float) -> None: ...

        def _start(self, plan: Plan, child_ends: list[int]) -> None: ...

        def _forward(self, signo: int, code: int) -> None: ...

        def _say(self, message: str) -> None: ...

        def _pipe(self, fds: tuple[int, ...], dest: int, masker: Masker) -> int: ...

    def _changed(self, update: Update) -> None:
        """An Update from the lease, while the child runs."""
        action = self.rotation.arrived(update, time.monotonic())
        if action == "stop":
            self._terminate(self.launch.kill_grace)
        elif action == "signal":
            previous = self._apply(update)
            assert self.launch.on_change.signo is not None  # mode signal has one
            kill(self.pid, self.launch.on_change.signo)
            if update.env_changed:
                self._say(f"{', '.join(update.env_changed)} changed, but a running process's environment cannot:"
                          " the child keeps the old value until it ends (on_change: restart gives it the new one)")
                self.rotation.keep(previous)
            else:
                for value in previous:
                    value.wipe()
                self._acknowledge([update.seq])

    def _apply(self, update: Update) -> list[Secret]:
        """Make `update` the values from now on: mask them, rewrite the files; the previous values."""
        for stream in self.streams:
            stream.masker.add(update.secrets)
        previous = values_of(self.launch)
        self.launch.files.rewrite(update.files)
        self.launch.env, self.launch.secrets = update.env, update.secrets
        update.env, update.secrets = {}, ()
        return previous

    def _acknowledge(self, seqs: list[int]) -> None:
        lease = self.launch.lease
        for seq in seqs:
            if lease is not None:
                try:
                    lease.rotated(seq)
                except Exception:  # noqa: S110 - best effort, as lease.end; the interface promises no raise
                    pass

    def _begin_restart(self, now: float) -> None:
        if self.status is None and self.rotation.due(now):
            self._terminate(self.launch.kill_grace)

    def _restarted(self) -> bool:
        """The child ended: if for a restart, end its tree, then start the command with the new values."""
        rotation = self.rotation
        if not rotation.stopping or rotation.pending is None or self.timed_out or self.revoked is not None:
            return False
        for stream, _fds in self.piped:  # a pty's stream goes on: the next child gets the same pty
            stream.drain()
            stream.write(block=True)
        late: list[tuple[int, int]] = []  # signals sent to runwrap while the tree ends
        reaper.end_descendants(self.launch.kill_grace, self.sigfd, termed=self.termed, kill_by=self.kill_by,
                               signals=late)
        if any(signo in ENDING for signo, _code in late):
            rotation.cancel()
            return False
        update = rotation.pending
        seqs = [*rotation.coalesced, update.seq]
        rotation.pending, rotation.coalesced, rotation.stopping = None, [], False
        for value in self._apply(update):
            value.wipe()  # no running child can hold them any more
        self.status, self.termed, self.kill_at, self.kill_by, self.child_stopped = None, set(), None, None, False
        self._start(self.plan, self._new_pipes())
        rotation.backoff.started(time.monotonic())
        self._acknowledge(seqs)
        for signo, code in late:
            if signo not in STOPS and signo != signal.SIGCONT:
                self._forward(signo, code)
        return True

    def _new_pipes(self) -> list[int]:
        """Fresh pipes for the next child (the last one's were closed with its tree), with the same maskers."""
        old, self.piped = self.piped, []
        ends = []
        for stream, fds in old:
            self.streams.remove(stream)
            stream.close()
            wipe_bytes(stream.buf)
            ends.append(self._pipe(fds, stream.dest, stream.masker))
        return ends

    def _restart_at(self) -> float | None:
        return self.rotation.restart_at

    def _cancel_restart(self) -> None:
        self.rotation.cancel()

    def _signalled(self, signo: int) -> None:
        if signo in ENDING and self.rotation.stopping:
            self.rotation.cancel()  # the run ends by the stopped child's status instead

    def _wipe_changes(self) -> None:
        self.rotation.wipe()

    def _end_by_change(self) -> None:
        self.rotation.finish()
