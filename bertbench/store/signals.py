"""Ctrl-C and SIGTERM: one line on stderr and exit code 130 / 143, whenever they come.

`install` replaces Python's handlers (the default SIGINT handler raises a bare
KeyboardInterrupt, SIGTERM kills the process without any clean-up) by one that raises
Interrupted, a KeyboardInterrupt that knows its signal. It imports nothing heavy, so
it is installed before PyTorch loads and an interrupted import ends as cleanly as an
interrupted sweep. Inside `deferred()` (a row being written, a file being migrated) a
signal waits until the block ends, so a file is never left half-changed by us. After the
first signal, repeats are ignored while the run winds down.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; exit_code is the shell's 128 + its number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


class _State:
    received: int | None = None  # the first signal
    raised = False  # Interrupted was raised for it
    depth = 0  # nesting of deferred() blocks
    installed = False  # our handlers are in place (install, until restore)


_state = _State()


def _handle(signum: int, frame: FrameType | None) -> None:
    if _state.received is not None:
        return  # already stopping: a second Ctrl-C must not break the clean-up
    _state.received = signum
    if _state.depth == 0:
        _state.raised = True
        raise Interrupted(signum)


def check() -> None:
    """Raise Interrupted for a signal already received whose exception was lost: raised while
    Python ran an object's finaliser (`__del__`, e.g. when the garbage collector runs), it is
    printed as "Exception ignored" and the run would go on. Called between grid points."""
    if _state.installed and _state.received is not None and _state.depth == 0:
        _state.raised = True
        raise Interrupted(_state.received)


def _unraisable(hook: Callable) -> Callable:
    """sys.unraisablehook that keeps quiet about an Interrupted lost in a finaliser (check()
    raises it again, as one line) and passes everything else to `hook`."""

    def quiet(unraisable) -> None:
        if not isinstance(unraisable.exc_value, Interrupted):
            hook(unraisable)

    return quiet


def install() -> dict[int, object]:
    """Handle SIGINT and SIGTERM from now on; returns the handlers replaced (for restore).
    Outside the main thread (where Python allows no handler) nothing changes."""
    _state.received, _state.raised, _state.depth, _state.installed = None, False, 0, True
    previous: dict = {"unraisablehook": sys.unraisablehook}
    sys.unraisablehook = _unraisable(sys.unraisablehook)
    try:
        for sig in SIGNALS:
            previous[sig] = signal.signal(sig, _handle)
    except ValueError:  # not the main thread
        pass
    return previous


def restore(previous: dict) -> None:
    """Put back what install() replaced; the signal received meanwhile is kept for guard()."""
    _state.installed = False
    for sig, handler in previous.items():
        if sig == "unraisablehook":
            sys.unraisablehook = handler
        else:
            signal.signal(sig, handler)


@contextmanager
def handled() -> Iterator[None]:
    """install() for the block's duration (cli.main run in-process leaves the caller's handlers)."""
    previous = install()
    try:
        yield
    finally:
        restore(previous)


@contextmanager
def deferred() -> Iterator[None]:
    """A signal arriving inside the block is raised when the block ends, not in its middle."""
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        if _state.depth == 0 and _state.received is not None and not _state.raised:
            _state.raised = True
            raise Interrupted(_state.received)


def received() -> int | None:
    """The first signal received since install(), if any."""
    return _state.received


def exit_code(error: KeyboardInterrupt) -> int:
    return error.exit_code if isinstance(error, Interrupted) else 128 + signal.SIGINT


def describe(error: KeyboardInterrupt) -> str:
    return f"interrupted by {error.name}" if isinstance(error, Interrupted) else "interrupted"


def guard(main: Callable[[], int], prog: str) -> int:
    """Run a script's main; an interrupt that escapes it (e.g. while it imports) is one line,
    and so is one arriving after it returned, while the interpreter shuts down.

    The last-resort handler goes in first: main's own (handled()) put it back when main
    returns, so no moment is left with Python's default, which SIGTERM would end silently."""

    def at_exit(signum: int, frame: FrameType | None) -> None:
        sys.stdout.flush()
        print(f"{prog}: error: {describe(Interrupted(signum))}", file=sys.stderr, flush=True)
        os._exit(128 + signum)

    try:
        for sig in SIGNALS:
            signal.signal(sig, at_exit)
    except ValueError:  # not the main thread
        pass
    try:
        code = main()
        if _state.received is not None and code != 128 + _state.received:
            raise Interrupted(_state.received)  # its exception was lost in a finaliser: still a signal
        return code
    except KeyboardInterrupt as e:
        print(f"{prog}: error: {describe(e)}", file=sys.stderr)
        return exit_code(e)
    except Exception:
        if _state.received is None:
            raise
        # What the interrupt broke on its way (an import cut short raises ModuleNotFoundError, say)
        print(f"{prog}: error: {describe(Interrupted(_state.received))}", file=sys.stderr)
        return 128 + _state.received
