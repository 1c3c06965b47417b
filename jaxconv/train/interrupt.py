"""SIGINT and SIGTERM as a request to stop training at the next step boundary.

The training loop polls ``StopRequest.signal`` after each step; once it is set
the loop saves a checkpoint and stops, so a preempted or Ctrl-C'd run resumes
exactly where it left off.
"""

import os
import signal
import threading
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Context manager catching SIGINT and SIGTERM while it is active.

    The first signal only records itself in ``signal`` and puts the previous
    handlers back, so a second one acts as it would have without this (Ctrl-C
    twice raises KeyboardInterrupt at once). Handlers are installed only in
    the main thread (Python allows no other); elsewhere, and for a signal that
    was ignored (``SIG_IGN``, e.g. SIGINT of a background job), nothing
    changes and ``signal`` stays None. Exiting restores the previous handlers.
    """

    def __init__(self):
        self.signal: signal.Signals | None = None
        self._previous: dict[signal.Signals, object] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        self._restore()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signal.Signals(signum)
        self._restore()
        # os.write, not print: a print here could re-enter one in progress in the main thread.
        os.write(
            2,
            f"\n{self.signal.name} received: stopping after the current step and saving a checkpoint "
            f"(send it again to abort at once, without saving)\n".encode(),
        )

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            # None: a handler installed from C, which Python cannot reinstall; the default is the closest.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()
