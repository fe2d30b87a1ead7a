"""Transfer windows (``[transfer] windows``): local-time spans like ``"22:00-06:00"`` when the
box may use the link. A span may wrap midnight; ``"08:00-08:00"`` is the whole day; no spans at
all means always."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_DAY = 24 * 60


def _minutes(text: str) -> int:
    hh, mm = text.split(":")
    return int(hh) * 60 + int(mm)


@dataclass(frozen=True)
class Windows:
    spans: tuple[tuple[int, int], ...]  # (start, end) minutes after local midnight

    @classmethod
    def parse(cls, specs: tuple[str, ...] | list[str]) -> Windows:
        spans = []
        for spec in specs:
            start, _, end = spec.strip().partition("-")
            spans.append((_minutes(start), _minutes(end)))
        return cls(tuple(spans))

    @property
    def always(self) -> bool:
        return not self.spans

    def _inside(self, minute: float) -> bool:
        for start, end in self.spans:
            if start == end:
                return True
            if start < end and start <= minute < end:
                return True
            if start > end and (minute >= start or minute < end):
                return True
        return False

    def is_open(self, now: dt.datetime) -> bool:
        return self.always or self._inside(now.hour * 60 + now.minute + now.second / 60)

    def seconds_until_open(self, now: dt.datetime) -> float:
        """0 when open now; else the seconds until the next span starts."""
        if self.is_open(now):
            return 0.0
        minute = now.hour * 60 + now.minute + now.second / 60 + now.microsecond / 60e6
        waits = [((start - minute) % _DAY) * 60 for start, _end in self.spans]
        return max(1.0, min(waits))

    def describe(self) -> str:
        if self.always:
            return "always"
        return ", ".join(f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}" for s, e in self.spans)
