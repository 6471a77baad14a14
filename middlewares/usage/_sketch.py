"""Stats' quantile sketch: a DDSketch whose bins can be read out and put back.

A DDSketch with a fixed mapping is mergeable bin by bin: two processes that
saw different latencies merge exactly by adding their bins' counts. So the
shared statistics keep each target's bins in Redis (key -> count, summed over
processes) and rebuild a sketch from them to answer quantiles. Imported only
once the ``[stats]`` extra has been found (it imports ddsketch).
"""

from __future__ import annotations

from collections.abc import Mapping

from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import CollapsingLowestDenseStore

__all__ = ["BIN_LIMIT", "RELATIVE_ACCURACY", "Sketch"]

RELATIVE_ACCURACY = 0.01
BIN_LIMIT = 2048


class Sketch(BaseDDSketch):
    """ddsketch's ``LogCollapsingLowestDenseDDSketch`` (1% relative accuracy, at
    most :data:`BIN_LIMIT` bins; the lowest collapse first), for values >= 0,
    that shows its bins (:meth:`bins`, :attr:`zeros`) and is rebuilt from them
    (:meth:`of`). Every process maps values to the same bin keys."""

    def __init__(self) -> None:
        super().__init__(
            mapping=LogarithmicMapping(RELATIVE_ACCURACY),
            store=CollapsingLowestDenseStore(BIN_LIMIT),
            negative_store=CollapsingLowestDenseStore(BIN_LIMIT),
            zero_count=0.0,
        )

    def bins(self) -> dict[int, float]:
        """Each non-empty bin's key and count (values within 1% of each other share one)."""
        store = self._store
        offset = store.offset
        return {index + offset: count for index, count in enumerate(store.bins) if count}

    @property
    def zeros(self) -> float:
        """How many values were too close to zero for a bin of their own."""
        return float(self._zero_count)

    @classmethod
    def of(cls, bins: Mapping[int, float], zeros: float = 0.0, total: float = 0.0) -> Sketch:
        """The sketch holding ``bins`` and ``zeros`` (counts) whose values sum to ``total``."""
        sketch = cls()
        store = sketch._store
        for key in sorted(bins):
            if bins[key] > 0:
                store.add(key, bins[key])
        sketch._zero_count = max(zeros, 0.0)
        sketch._count = store.count + sketch._zero_count
        sketch._sum = total
        return sketch
