"""A progress bar on stderr: tqdm when it is installed, otherwise one self-rewriting line
(one line per second at most when stderr is not a terminal). TILEWISE_AUTOTUNE_PROGRESS=0
turns it off."""
from __future__ import annotations

import sys
import threading
import time

from .. import env


def _enabled() -> bool:
    return env.flag("TILEWISE_AUTOTUNE_PROGRESS")


class Progress:
    def __init__(self, total: int, desc: str):
        self.total = total
        self.desc = desc
        self.done = 0
        self.note = ""
        self._lock = threading.Lock()
        self._bar = None
        self._last = 0.0
        self._on = _enabled() and total > 0
        if not self._on:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            self._bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=True)
        self._tty = sys.stderr.isatty()
        self._draw(force=True)

    def update(self, n: int = 1, note: str | None = None) -> None:
        with self._lock:
            self.done += n
            if note is not None:
                self.note = note
            if not self._on:
                return
            if self._bar is not None:
                if note is not None:
                    self._bar.set_postfix_str(note, refresh=False)
                self._bar.update(n)
                return
            self._draw(force=self.done >= self.total)

    def _draw(self, force: bool = False) -> None:
        if self._bar is not None:
            return
        now = time.monotonic()
        if not force and not self._tty and now - self._last < 1.0:
            return
        self._last = now
        width = 20
        filled = width * self.done // max(self.total, 1)
        line = f"{self.desc}: [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
        if self.note:
            line += f" {self.note}"
        try:
            if self._tty:
                sys.stderr.write("\r\033[K" + line)
            elif self.done or force:
                sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            self._on = False

    def close(self) -> None:
        if not self._on:
            return
        self._on = False
        if self._bar is not None:
            self._bar.close()
            return
        if self._tty:
            try:
                sys.stderr.write("\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
