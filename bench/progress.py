"""Progress of one training unit (estimation run, K-fold models, early runs, protocol models):
epochs done of the unit's total, an ETA and the current training accuracy. On a terminal it is
a tqdm bar; elsewhere (``--jobs`` workers, SLURM logs, a redirected run) one line at each
quarter; with ``--quiet``, nothing. ``Progress(None)`` does nothing, so trainers take one always.
"""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    def __init__(self, desc: str | None, total_epochs: int = 0, quiet: bool = True):
        self.desc, self.total, self.done, self.start = desc, total_epochs, 0, time.perf_counter()
        self.active = desc is not None and not quiet and total_epochs > 0
        self.bar = (tqdm(total=total_epochs, desc=desc, unit="epoch", leave=False, file=sys.stderr)
                    if self.active and sys.stderr.isatty() else None)
        self.next_line = 0.25

    def epoch(self, accuracy: float | None = None, epochs: int = 1) -> None:
        """``epochs`` more epochs done (a stacked group counts each model's); the training accuracy."""
        if not self.active:
            return
        self.done += epochs
        if self.bar is not None:
            self.bar.update(epochs)
            if accuracy is not None:
                self.bar.set_postfix(train_acc=f"{100 * accuracy:.1f}%")
        elif self.done >= self.next_line * self.total or self.done == self.total:
            elapsed = time.perf_counter() - self.start
            eta = elapsed * (self.total - self.done) / self.done
            acc = "" if accuracy is None else f", training accuracy {100 * accuracy:.1f}%"
            print(f"{self.desc}: epoch {self.done}/{self.total}{acc}, {elapsed:.0f} s, ETA {eta:.0f} s",
                  file=sys.stderr, flush=True)
            while self.next_line * self.total <= self.done:
                self.next_line += 0.25

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
