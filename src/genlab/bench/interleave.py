"""Timing Lightning against other loops on a shared machine: interleave them iteration by iteration.

A 2-core VM changes speed by 10-25% every few seconds (neighbours, clocks). Runs of A then B
compare the machine's moods, not A and B. Here every Lightning batch is followed by one
iteration of each other loop, in the same process, and each gets its own time: iteration i of
every loop ran within seconds of the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

import lightning as L


class Interleave(L.Callback):
    """After every Lightning training batch, runs each of ``steps`` (name -> one iteration) once.

    ``times["lightning"][i]`` is batch start to next batch start less the other loops' iterations in
    between; ``times[name][i]`` is that loop's iteration right after Lightning batch i. Iterations
    that span an epoch end (checkpoints, previews: not an iteration cost) are left out, in every loop.
    """

    def __init__(self, steps: dict[str, Callable[[], None]]):
        self.steps = steps
        self.times: dict[str, list[float]] = {"lightning": [], **{name: [] for name in steps}}
        self._start: float | None = None
        self._others: dict[str, float] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._start is not None and batch_idx > 0:
            self.times["lightning"].append(now - self._start - sum(self._others.values()))
            for name, seconds in self._others.items():
                self.times[name].append(seconds)
        self._start = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        for name, step in self.steps.items():
            start = time.perf_counter()
            step()
            self._others[name] = time.perf_counter() - start


def endless(loader: Callable[[], Iterable]) -> Iterator:
    """Batches of ``loader()`` epoch after epoch: what a plain loop's ``step`` draws from."""
    while True:
        yield from loader()
