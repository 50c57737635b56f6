"""``python -m bench compare``: how a method stands against the field, and what moved between two
result folders or two board trees. Output is markdown.

- ``compare METHOD [--results DIR]``: for every board of the store that has the method and every
  question it answers, the board's own verdict (the track's ``METRIC`` and ``verdict_rows``: what
  the board ranks, never a copy): its value, the best method's, its rank, the paired difference
  to the best (over the (cell, seed) pairs both have) with a 95% t-interval, and its state;
- ``compare DIR_A DIR_B``: two result folders (board by board, the values each verdict ranks,
  paired by method, cell and seed) or two leaderboard trees (board by board, row by row: the "mean ± half-width"
  cells of their tables), each difference beside the seed noise: a difference is *beyond seed
  noise* when its paired 95% interval (result folders) or the two intervals (boards) exclude it.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats
from tabulate import tabulate

from .store import Store, read_or_none
from .tracks import TRACKS


def _interval(differences) -> tuple[float, float]:
    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return float(d.mean()) if len(d) else math.nan, math.nan
    return float(d.mean()), float(stats.t.ppf(0.975, len(d) - 1) * stats.sem(d))


def _fmt(mean: float, half: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:+.{digits}f}" + ("" if math.isnan(half) else f" ± {half:.{digits}f}")


def _boards(results: Path):
    """(manifest path relative to the store, board manifest, the rows each question of its verdict
    ranks) of every board of a store: the rows come from the track's own ``verdict_rows``, over
    the hardness identifiers (as the board ranks them), so compare ranks what the board ranks."""
    from .leaderboard import hardness_records

    store = Store(results)
    for path in store.boards():
        board = read_or_none(path)
        if board is None or board["track"] not in TRACKS:
            continue
        scope = path.parent.parent
        records = [r for r in (read_or_none(scope / p) for p in board["records"]) if r is not None]
        records = hardness_records([r for r in records if not r["method"].startswith("_")])
        if records:
            yield path.relative_to(results), board, TRACKS[board["track"]].verdict_rows(records)


def method_against_field(method: str, results: str | Path) -> str:
    from .tracks.base import state_text, verdict

    rows = []
    for _, board, questions in _boards(Path(results)):
        track = TRACKS[board["track"]]
        for question, question_rows in questions.items():
            compared, _, summary = verdict(question_rows, track.METRIC)
            if method not in compared:
                continue
            entry, best = summary["methods"][method], summary["best"]
            if method == best and len(compared) > 1:  # the best: its lead over the runner-up
                runner = list(compared)[1]
                against = f"{_fmt(-compared[runner]['diff'], compared[runner]['ci'])} vs {runner}"
            else:
                against = f"{_fmt(entry['diff'], entry['ci'])} vs {best}"
            rank = sorted(summary["methods"].values(), key=lambda v: v["rank"]).index(entry) + 1
            rows.append([f"{board['label']}/{board['track']}", question, track.METRIC.name, f"{entry['value']:.3f}",
                         f"{best} {summary['methods'][best]['value']:.3f}", f"{rank} of {len(compared)}", against,
                         state_text(entry), compared[method]["n"]])
    if not rows:
        return f"No board in {results} has results of {method!r}."
    return (f"## {method} against the field ({results})\n\nEach board's own verdict (the track's metric and "
            "orientation, as the board ranks them); the difference is paired over the (cell, seed) pairs both "
            "methods have, mean ± 95% t-interval (none with one pair); at rank 1 it is the lead over the runner-up.\n\n"
            + tabulate(rows, headers=["board", "question", "metric", method, "best", "rank", "difference",
                                      "against the best", "pairs"], tablefmt="github"))


def _folder_rows(a: Path, b: Path) -> list[list]:
    """Board by board (the same manifest in both stores), the values each verdict ranks, paired by
    (method, cell, seed): the track's own metric, oriented as the board ranks it."""
    twins = {rel: (board, questions) for rel, board, questions in _boards(b)}
    rows = []
    for rel, board, questions in _boards(a):
        if rel not in twins:
            continue
        metric = TRACKS[board["track"]].METRIC
        for question, rows_a in questions.items():
            after = {(m, repr(cell), seed): v for m, cell, seed, v in twins[rel][1].get(question, [])}
            values: dict[str, list[tuple[float, float]]] = defaultdict(list)
            for m, cell, seed, v in rows_a:
                if (m, repr(cell), seed) in after:
                    values[m].append((v, after[(m, repr(cell), seed)]))
            for m, pairs in sorted(values.items()):
                before_v, after_v = map(np.array, zip(*pairs))
                diff, half = _interval(after_v - before_v)
                beyond = "–" if math.isnan(half) else ("yes" if abs(diff) > half else "no")
                rows.append([f"{board['label']}/{board['track']}", question, m, metric.name,
                             f"{before_v.mean():.3f}", f"{after_v.mean():.3f}", _fmt(diff, half), beyond, len(pairs)])
    return rows


_CELL = re.compile(r"^\s*([-+−]?\d+(?:\.\d+)?)\s*(?:±\s*(\d+(?:\.\d+)?))?")


def _table_values(path: Path) -> dict[tuple, tuple[float, float]]:
    """Every ``mean ± half`` (or plain number) cell of a board's tables: (section, method, column) -> values."""
    out, section, heads = {}, "", []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            section, heads = line.strip("# "), []
        elif line.startswith("|") and not set(line) <= set("|-: "):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not heads:
                heads = cells
                continue
            for head, cell in zip(heads[1:], cells[1:]):
                match = _CELL.match(cell)
                if match:
                    out[(section, cells[0], head)] = (float(match.group(1).replace("−", "-")),
                                                      float(match.group(2)) if match.group(2) else math.nan)
    return out


def _board_rows(a: Path, b: Path) -> list[list]:
    rows = []
    for path in sorted(a.glob("*/*.md")):
        twin = b / path.relative_to(a)
        if not twin.exists():
            continue
        va, vb = _table_values(path), _table_values(twin)
        for key in sorted(set(va) & set(vb)):
            (ma, ha), (mb, hb) = va[key], vb[key]
            if ma == mb:
                continue
            noise = max(ha, hb)
            beyond = "–" if math.isnan(noise) else ("yes" if abs(mb - ma) > noise else "no")
            rows.append([str(path.relative_to(a).with_suffix("")), key[0][:40], key[1], key[2], f"{ma:g}", f"{mb:g}",
                         f"{mb - ma:+.3g}", beyond])
    return rows


def compare_trees(a: str | Path, b: str | Path) -> str:
    a, b = Path(a), Path(b)
    if list(a.glob("*/*/_boards")) or list(b.glob("*/*/_boards")):
        rows = _folder_rows(a, b)
        heads = ["board", "question", "method", "metric", "before", "after", "difference", "beyond seed noise",
                 "pairs"]
        what = ("Board by board, the values each verdict ranks (the same board, cell, method and seed in both); "
                "difference = after − before, mean ± 95% t-interval over the pairs; beyond seed noise when the "
                "interval excludes 0.")
    else:
        rows = _board_rows(a, b)
        heads = ["board", "table", "row", "column", "before", "after", "difference", "beyond seed noise"]
        what = ("Board by board, every table cell that changed; beyond seed noise when the difference exceeds the "
                "larger of the two 95% half-widths (– where a table prints none).")
    if not rows:
        return f"Nothing differs between {a} and {b} (or they share no record)."
    return f"## {a} → {b}\n\n{what}\n\n" + tabulate(rows, headers=heads, tablefmt="github")
