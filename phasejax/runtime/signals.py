"""SIGINT/SIGTERM during long work: finish the current cell, save it, then stop (exit 130 in the CLI).

:func:`deferred_signals` records the first signal instead of stopping; a second one raises
``KeyboardInterrupt`` at once. :class:`Interrupted` (a ``KeyboardInterrupt``) carries the folder of the
finished cells.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

__all__ = ["Interrupted", "deferred_signals"]


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM arrived; the finished cells are saved and the run can be resumed."""

    def __init__(self, signum: int | None, folder: str):
        name = signal.Signals(signum).name if signum is not None else "a signal"
        super().__init__(f"stopped by {name}; finished cells are in {folder}; rerun with the same --out to resume")
        self.signum = signum
        self.folder = folder


class _Stop:
    signum: int | None = None


@contextlib.contextmanager
def deferred_signals(signals=(signal.SIGINT, signal.SIGTERM)):
    """Record the first SIGINT/SIGTERM instead of stopping; a second one raises KeyboardInterrupt.

    Yields an object whose ``signum`` is None until a signal arrived. Outside the main thread
    (where Python cannot install handlers) signals keep their usual effect.
    """
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.signum is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping now")
        stop.signum = signum
        print(f"\n{signal.Signals(signum).name}: finishing the current cell, then stopping "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    old = {s: signal.signal(s, handler) for s in signals}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)
