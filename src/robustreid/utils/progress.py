"""Progress bars that suit where the output goes: the usual redrawn bar on a terminal (or in a notebook), plain
lines every few seconds in a log file, a pipe or CI.

A redrawn bar is a stream of carriage-return frames; written to a file, every frame stays (a ``make demo`` log was
mostly frames). :func:`progress_bar` gives a tqdm bar either way (``update``, ``set_postfix``, ``close`` and the
context manager work as usual); when the stream is not a terminal, it prints one line when it starts, at most one
line every ``interval`` seconds, and a last line when it closes:

    corrupt market1501 (sweep): 40% 1024/2560 [00:05<00:07, 204.80img/s]
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable, Optional

from tqdm.std import tqdm as _std_tqdm

#: seconds between two lines when the output is not a terminal
DEFAULT_INTERVAL = 5.0
#: ``ROBUSTREID_PROGRESS=lines`` or ``bar`` forces one style (e.g. lines in a terminal that records a session)
ENV_STYLE = "ROBUSTREID_PROGRESS"

_LINE_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
_LINE_FORMAT_NO_TOTAL = "{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]"


class _LineStream:
    """Turns tqdm's frames (``'\\r' + status + padding``) into whole lines; drops the empty frames it writes to
    clear a bar and the bare newlines and carriage returns it writes on close."""

    def __init__(self, stream):
        self.stream = stream

    @property
    def encoding(self):
        return getattr(self.stream, "encoding", None) or "utf-8"

    def write(self, s: str) -> int:
        text = str(s).replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")
            self.flush()
        return len(s)

    def flush(self) -> None:
        getattr(self.stream, "flush", lambda: None)()


class LineProgress(_std_tqdm):
    """A tqdm bar for logs: a line at the start, at most one line every ``interval`` seconds (updates and
    ``set_postfix`` alike), and the final state on ``close``; no cursor movement, no clearing."""

    def __init__(self, *args: Any, interval: float = DEFAULT_INTERVAL, **kwargs: Any):
        self._interval = float(interval)
        self._line_t = -float("inf")
        self._line_n = None  # the count the last line showed
        kwargs["file"] = _LineStream(kwargs.get("file") or sys.stderr)
        kwargs["mininterval"] = self._interval
        kwargs["miniters"] = 1  # look at the clock on every update; the interval alone decides
        kwargs["leave"] = True  # a log keeps its last line
        kwargs["dynamic_ncols"] = False
        kwargs["ncols"] = None
        total = kwargs.get("total")
        if total is None and args and hasattr(args[0], "__len__"):
            total = len(args[0])
        if "bar_format" not in kwargs:
            kwargs["bar_format"] = _LINE_FORMAT if total else _LINE_FORMAT_NO_TOTAL
        super().__init__(*args, **kwargs)

    def refresh(self, nolock: bool = False, lock_args=None):
        if self._time() - self._line_t < self._interval:
            return False  # set_postfix / set_description refresh at will: keep to one line per interval
        return super().refresh(nolock=nolock, lock_args=lock_args)

    def display(self, msg: Optional[str] = None, pos: Optional[int] = None) -> bool:
        if msg == "":
            return False  # tqdm clears a bar with an empty frame
        if self.disable and self.n == self._line_n:
            return False  # closing: the last line already shows the final count
        self._line_t, self._line_n = self._time(), self.n
        self.sp(self.__str__() if msg is None else msg)
        return True

    def moveto(self, n: int) -> None:  # no cursor movement in a log
        pass

    def clear(self, nolock: bool = False) -> None:  # nothing on screen to clear
        pass


def _in_notebook() -> bool:
    from tqdm.auto import tqdm as auto_tqdm
    from tqdm.asyncio import tqdm as asyncio_tqdm

    return auto_tqdm is not asyncio_tqdm  # tqdm.auto picked its notebook widget


def use_lines(file=None) -> bool:
    """Whether a bar written to ``file`` (default stderr) should print lines rather than redraw itself."""
    forced = os.environ.get(ENV_STYLE, "").strip().lower()
    if forced in ("lines", "bar"):
        return forced == "lines"
    stream = file if file is not None else sys.stderr
    try:
        if stream.isatty():
            return False
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        pass
    return not _in_notebook()


def progress_bar(iterable: Optional[Iterable] = None, *, total: Optional[float] = None, desc: Optional[str] = None,
                 unit: str = "it", initial: float = 0, leave: bool = True, file=None,
                 interval: float = DEFAULT_INTERVAL, **kwargs: Any) -> _std_tqdm:
    """A progress bar over ``iterable`` (or a manual one with ``total``): tqdm's redrawn bar on a terminal, a line
    every ``interval`` seconds otherwise (see the module docstring). ``leave`` only applies to the terminal bar;
    other keyword arguments go to tqdm."""
    if use_lines(file):
        return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, file=file,
                            interval=interval, **kwargs)
    from tqdm.auto import tqdm as auto_tqdm

    return auto_tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave, file=file,
                     dynamic_ncols=True, **kwargs)


__all__ = ["DEFAULT_INTERVAL", "ENV_STYLE", "LineProgress", "progress_bar", "use_lines"]
