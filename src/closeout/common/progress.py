"""A plain progress line on stderr: done/total, rate and ETA."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, *, total: int, label: str, stream=None, every: float = 0.5):
        # stderr as it is now, not as it was when this module was imported (it may have been replaced since)
        self.total, self.label, self.stream, self.every = total, label, stream or sys.stderr, every
        self.done_count = 0
        self.started = time.monotonic()
        self.shown = 0.0
        self.shown_count: int | None = None

    def expect(self, total: int) -> None:
        """Set the total once it is known; rate and ETA count from now, not from the counting."""
        self.total, self.started = total, time.monotonic()

    def advance(self, n: int) -> None:
        self.done_count += n
        now = time.monotonic()
        if now - self.shown >= self.every:
            self.shown = now
            self._show(now)

    def _show(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-6)
        rate = self.done_count / elapsed
        left = max(self.total - self.done_count, 0)
        eta = left / rate if rate else 0.0
        pct = 100 * self.done_count / self.total if self.total else 100.0
        width = 30
        filled = int(width * min(pct, 100) / 100)
        self.shown_count = self.done_count
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done_count}/{self.total} "
                          f"{pct:5.1f}% {rate:,.0f} rows/s ETA {eta:,.0f}s ")
        self.stream.flush()

    def done(self) -> None:
        """End the line, showing the count first unless the last advance already did: a log of
        stderr would otherwise hold the final line twice."""
        if self.shown_count != self.done_count:
            self._show(time.monotonic())
        self.stream.write("\n")
        self.stream.flush()
