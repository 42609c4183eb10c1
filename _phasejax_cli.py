"""The ``phasejax`` console script: SIGINT and SIGTERM are handled from its first line.

Importing phasejax (JAX, flax) takes about two seconds; a signal in that window would otherwise kill the process
with -15 (SIGTERM) or a traceback (SIGINT). Here it ends the start-up with one line and exit 130 at once
(nothing has run yet); :func:`phasejax.cli.main` then installs its own handlers (a clean save, then exit 130).
"""

import os
import signal
import sys


def _stop_now(signum, frame):
    # Nothing has been computed or written yet, so stop at once. Raising KeyboardInterrupt here is not enough:
    # library imports that catch everything (bare ``except:``) would swallow it and the run would go on.
    os.write(2, f"phasejax: {signal.Signals(signum).name} during start-up; nothing was run\n".encode())
    os._exit(130)


def main() -> int:
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _stop_now)
    from phasejax.cli import main as run

    return run()


if __name__ == "__main__":
    sys.exit(main())
