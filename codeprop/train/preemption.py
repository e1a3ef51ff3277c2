"""SIGTERM as a request to stop at the next safe point (a preemptible VM, a batch
scheduler's time limit, ``kill``): pretraining saves a checkpoint and stops; a probe saves
and stops after the current epoch or jitted call of steps, keeping its finished folds
(`codeprop.probes.protocol`)."""

from __future__ import annotations

import signal


class Preemption:
    """A context in which SIGTERM sets `requested` instead of ending the process.

    Outside the main thread no handler can be installed: SIGTERM then keeps its previous
    effect.

    Args:
      on_request: called (in the main thread, from the handler) each time SIGTERM arrives,
        e.g. to pass it on to child processes.
    """

    def __init__(self, on_request=None):
        self.requested = False
        self._on_request = on_request
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # Not the main thread: no handler.
            self._previous = None
        return self

    def _handle(self, signum, frame):
        del signum, frame
        self.requested = True
        if self._on_request is not None:
            self._on_request()

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


class Preempted(Exception):
    """Raised by a training loop that stopped because SIGTERM asked it to."""
