"""``python -m bench compare``: how a method stands against the field, and what moved between two
result folders or two board trees. Output is markdown.

- ``compare METHOD [--results DIR]``: for every board of the store that has the method, its
  value of the board's primary metric, the best method's, its rank, and the paired difference
  to the best (over the (cell, seed) pairs both have) with a 95% t-interval;
- ``compare DIR_A DIR_B``: two result folders (record by record: the same configuration, cell,
  method and seed) or two leaderboard trees (board by board, row by row: the "mean ± half-width"
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

#: track -> (the metric a board ranks by, whether higher is better)
PRIMARY = {"detection": ("auprc", True), "reference": ("spearman", True), "geometry": ("spearman", True),
           "split": ("swing", True), "pathways": ("acc_hard", True), "resampling": ("recall_gap", False)}


def _cell(record: dict) -> str:
    return repr(sorted(record["config"].items()))


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
    """(board manifest, its records that exist) of every board of a store."""
    store = Store(results)
    for path in store.boards():
        board = read_or_none(path)
        if board is None or board["track"] not in PRIMARY:
            continue
        scope = path.parent.parent
        records = [r for r in (read_or_none(scope / p) for p in board["records"]) if r is not None]
        yield board, [r for r in records if not r["method"].startswith("_")]


def method_against_field(method: str, results: str | Path) -> str:
    rows = []
    for board, records in _boards(Path(results)):
        metric, higher = PRIMARY[board["track"]]
        values = {(r["method"], _cell(r), r["seed"]): r["metrics"].get(metric) for r in records}
        values = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
        methods = sorted({m for m, _, _ in values})
        if method not in methods:
            continue
        means = {m: np.mean([v for (n, _, _), v in values.items() if n == m]) for m in methods}
        order = sorted(methods, key=lambda m: -means[m] if higher else means[m])
        best = order[0] if order[0] != method or len(order) == 1 else order[1]
        pairs = [values[(method, c, s)] - values[(best, c, s)] for (m, c, s) in values
                 if m == method and (best, c, s) in values]
        diff, half = _interval(pairs)
        rank = order.index(method) + 1
        rows.append([f"{board['label']}/{board['track']}", metric, f"{means[method]:.3f}",
                     f"{order[0]} {means[order[0]]:.3f}", f"{rank} of {len(order)}",
                     f"{_fmt(diff, half)} vs {best}", len(pairs)])
    if not rows:
        return f"No board in {results} has results of {method!r}."
    return (f"## {method} against the field ({results})\n\nPrimary metric per board; the difference is paired "
            "over the (cell, seed) pairs both methods have, mean ± 95% t-interval (none with one pair); at rank 1 "
            "it is against the runner-up.\n\n"
            + tabulate(rows, headers=["board", "metric", method, "best", "rank", "difference", "pairs"],
                       tablefmt="github"))


def _folder_rows(a: Path, b: Path) -> list[list]:
    """Record by record: the same relative path in both stores (configuration, track, cell, method, seed)."""
    values: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: {0: [], 1: []})
    pairs: dict[tuple, list[float]] = defaultdict(list)
    for path in sorted(a.glob("*/*/*/*/*/seed*.json")):
        twin = b / path.relative_to(a)
        ra, rb = read_or_none(path), read_or_none(twin)
        if ra is None or rb is None or ra["track"] not in PRIMARY or ra["method"].startswith("_"):
            continue
        metric, _ = PRIMARY[ra["track"]]
        va, vb = ra["metrics"].get(metric), rb["metrics"].get(metric)
        if va is None or vb is None:
            continue
        key = (path.relative_to(a).parts[0], ra["track"], metric, ra["method"])
        values[key][0].append(va)
        values[key][1].append(vb)
        pairs[key].append(vb - va)
    rows = []
    for key, lists in sorted(values.items()):
        before, after = lists[0], lists[1]
        diff, half = _interval(pairs[key])
        beyond = "–" if math.isnan(half) else ("yes" if abs(diff) > half else "no")
        rows.append([f"{key[0]}/{key[1]}", key[3], key[2], f"{np.mean(before):.3f}", f"{np.mean(after):.3f}",
                     _fmt(diff, half), beyond, len(pairs[key])])
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
        heads = ["board", "method", "metric", "before", "after", "difference", "beyond seed noise", "pairs"]
        what = ("Record by record (the same configuration, cell, method and seed in both); difference = after − "
                "before, mean ± 95% t-interval over the pairs; beyond seed noise when the interval excludes 0.")
    else:
        rows = _board_rows(a, b)
        heads = ["board", "table", "row", "column", "before", "after", "difference", "beyond seed noise"]
        what = ("Board by board, every table cell that changed; beyond seed noise when the difference exceeds the "
                "larger of the two 95% half-widths (– where a table prints none).")
    if not rows:
        return f"Nothing differs between {a} and {b} (or they share no record)."
    return f"## {a} → {b}\n\n{what}\n\n" + tabulate(rows, headers=heads, tablefmt="github")
