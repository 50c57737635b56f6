"""Track ``meta``: meta-measures of every method (docs/protocol.md, "Meta-measures"): stability,
agreement, cost.

On the pooled pool (train + test), every seed's estimation run:

- **stability**: split the seeds into two disjoint halves of equal size
  (``bench.metrics.equal_halves``: even and odd positions, the last seed left out when
  their number is odd), average each half's oriented scores, and report Spearman rho
  between the two means and the Jaccard index of their hard sets H(q)
  (``bench.metrics.hard_set``, q = 0.1; each half breaks ties with its first seed, so tied
  scores cannot agree by construction); and, as the replicates of the verdict, rho between
  every pair of single seeds (``pair_rho``);
- **agreement**: Spearman rho and hard-set Jaccard between every pair of methods' mean
  scores (over all seeds): markdown matrices and a heatmap;
- **cost**: the method's own scoring time plus its apportioned share of the training it
  needed (``ScoreResult.cost``), mean over seeds, on the device named in the table.

Records: one per (method, seed) holding that seed's cost; the cross-seed summaries
(stability, agreement row) computed by ``run`` over the seeds of that run are stored in
every record of the method, so ``report`` needs nothing but the records. The seed set
and the method set are part of every record's config: another set is another table.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr
from tabulate import tabulate
from tqdm import tqdm

from ..metrics import equal_halves, hard_set
from .base import Metric, Report, TrackSettings, Unit, group, per_method_units, ranks_by, verdict_section

NAME = "meta"
Q = 0.1


@dataclass(frozen=True)
class Settings(TrackSettings):
    NAME = "meta"
    q: float = Q  # the hard-set share of the Jaccard indices

    def validate(self) -> None:
        self.check_range("q", 0.0, 1.0)


def plan(engine, settings: Settings) -> list[Unit]:
    config = {"pool": engine.pool("pooled").key, "q": settings.q, "seeds": list(engine.seeds),
              "methods": sorted(m.name for m in engine.methods)}
    return per_method_units(engine, [config], engine.seeds)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    a, b = set(np.asarray(a).tolist()), set(np.asarray(b).tolist())
    return len(a & b) / len(a | b) if a | b else 1.0


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def stability(per_seed: dict[int, np.ndarray], q: float = Q) -> dict | None:
    """Spearman rho and hard-set Jaccard between the mean scores of two disjoint seed halves of
    equal size (``equal_halves``), and rho between every pair of single seeds (``pair_rho``).
    None with fewer than two seeds."""
    seeds = sorted(per_seed)
    if len(seeds) < 2:
        return None
    halves = list(equal_halves(seeds))
    a, b = (np.mean([per_seed[s] for s in half], axis=0) for half in halves)
    # each half breaks ties with its own seed, so tied scores do not overlap by construction
    hard_a, hard_b = hard_set(a, q, seed=halves[0][0]), hard_set(b, q, seed=halves[1][0])
    pairs = {f"{s}-{t}": _finite(spearmanr(per_seed[s], per_seed[t])[0]) for i, s in enumerate(seeds)
             for t in seeds[i + 1:]}
    return {"rho": _finite(spearmanr(a, b)[0]), "jaccard": jaccard(hard_a, hard_b), "halves": halves,
            "pair_rho": pairs}


def agreement(means: dict[str, np.ndarray], q: float = Q) -> dict[str, dict[str, dict]]:
    """For every ordered pair of methods: Spearman rho and hard-set Jaccard of their mean scores."""
    names = sorted(means)
    if not names:
        return {}
    matrix = np.column_stack([means[n] for n in names])
    if len(names) == 1:
        rho = np.ones((1, 1))
    elif len(names) == 2:
        r = spearmanr(matrix[:, 0], matrix[:, 1])[0]
        rho = np.array([[1.0, r], [r, 1.0]])
    else:
        rho = spearmanr(matrix)[0]
    # ties broken with a seed of the method's own (stable across runs), not one shared order
    hard = {n: hard_set(means[n], q, seed=zlib.crc32(n.encode())) for n in names}
    return {a: {b: {"spearman": _finite(rho[i, j]), "jaccard": 1.0 if a == b else jaccard(hard[a], hard[b])}
                for j, b in enumerate(names)} for i, a in enumerate(names)}


def run(engine, settings: Settings, units: list[Unit]) -> None:
    """Every record of the plan: the summaries span all seeds and methods, so they are computed together."""
    pool = engine.pool("pooled")
    config, q = units[0].config, settings.q
    per_seed: dict[str, dict[int, np.ndarray]] = {}
    costs: dict[tuple[str, int], dict] = {}
    for seed in tqdm(engine.seeds, desc="meta", disable=engine.quiet):
        for name, result in engine.scores(pool, seed).items():
            if result.status == "ok":
                per_seed.setdefault(name, {})[seed] = result.scores
                costs[name, seed] = result.cost
    means = {name: np.mean([scores[s] for s in sorted(scores)], axis=0) for name, scores in per_seed.items()}
    agree = agreement(means, q)
    methods = {m.name: m for m in engine.methods}
    for name, scores in per_seed.items():
        summary = {"stability": stability(scores, q), "agreement": agree[name], "seeds_used": sorted(scores),
                   "family": methods[name].family, "higher_is_harder": methods[name].higher_is_harder,
                   "n": len(pool)}
        for seed in scores:
            cost = costs[name, seed]
            metrics = {"scoring_s": cost.get("scoring_s", 0.0), "shared_s": cost.get("shared_s", 0.0),
                       "total_s": cost.get("scoring_s", 0.0) + cost.get("shared_s", 0.0)}
            engine.write_record(NAME, config, name, seed, metrics, **summary)


def _fmt(value, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _latest(records: list[dict]) -> dict:
    """The record with the widest seed set, the newest among those: its summaries are current."""
    return max(records, key=lambda r: (len(r.get("seeds_used", [])), r.get("provenance", {}).get("date", "")))


def _heatmap(names: list[str], spearman: np.ndarray, jaccard_matrix: np.ndarray, q: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(5.0, 0.38 * len(names) + 2)
    figure, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    for ax, matrix, title, vmin, cmap in ((axes[0], spearman, "Spearman ρ of mean scores", -1.0, "RdBu_r"),
                                          (axes[1], jaccard_matrix, f"Jaccard of hard sets (q = {q})", 0.0, "viridis")):
        image = ax.imshow(np.where(np.isnan(matrix), 0.0, matrix), vmin=vmin, vmax=1.0, cmap=cmap)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_title(title)
        figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    figure.tight_layout()
    return figure


#: what the verdict ranks by (docs/protocol.md, "Statistics": why 0.02)
METRIC = Metric("Spearman ρ between two seeds", higher_is_better=True, delta=0.02)


def disjoint_pairs(seeds) -> list[str]:
    """Consecutive disjoint pairs of the sorted seeds, as ``pair_rho`` names them ("0-1", "2-3"):
    the independent replicates of stability (every pair of S seeds shares seeds; these do not)."""
    seeds = sorted(seeds)
    return [f"{a}-{b}" for a, b in zip(seeds[0::2], seeds[1::2])]


def verdict_rows(records: list[dict]) -> dict[str, list]:
    """The rows the verdict ranks: (method, "stability", replicate, Spearman ρ between the two seeds
    of a disjoint pair)."""
    rows = []
    for (method,), rs in group(records, "method").items():
        stab = _latest(rs).get("stability") or {}
        pairs = stab.get("pair_rho") or {}
        seeds = sorted({int(s) for pair in pairs for s in pair.split("-")})
        rows += [(method, "stability", i, pairs[p]) for i, p in enumerate(disjoint_pairs(seeds))
                 if pairs.get(p) is not None]
    return {"stability": rows}


def report(records: list[dict]) -> Report:
    q = records[0]["config"].get("q", Q)
    by_method = {m: rs for (m,), rs in group(records, "method").items()}
    summaries = {m: _latest(rs) for m, rs in by_method.items()}
    stab = {m: (s.get("stability") or {}) for m, s in summaries.items()}
    rho = {m: (st.get("rho") if st.get("rho") is not None else -math.inf) for m, st in stab.items()}
    ranks = ranks_by(rho)
    devices = sorted({r["device"] for r in records})

    rows = []
    for method in sorted(by_method, key=lambda m: (-rho[m], m)):
        rs, s = by_method[method], summaries[method]
        cost = lambda key: float(np.mean([r["metrics"][key] for r in rs]))  # noqa: E731
        rows.append([method, s.get("family", ""), "higher" if s.get("higher_is_harder") else "lower",
                     _fmt(stab[method].get("rho")), _fmt(stab[method].get("jaccard")),
                     f"{ranks[method]:.1f}", len(rs), f"{cost('scoring_s'):.3f}", f"{cost('shared_s'):.2f}",
                     f"{cost('total_s'):.2f}"])
    n = sorted({s.get("n") for s in summaries.values()})
    seeds_used = sorted({tuple(s.get("seeds_used", ())) for s in summaries.values()})
    halves = next((st["halves"] for st in stab.values() if st.get("halves")), None)
    text = [
        "### Stability and cost\n",
        f"Pool: pooled (train + test), N = {', '.join(map(str, n))}. Stability: Spearman ρ and Jaccard of the "
        f"hard sets H({q}) between the mean oriented scores of two disjoint seed halves "
        f"({' vs '.join(str(h) for h in halves) if halves else 'needs ≥ 2 seeds'}). "
        "Cost: seconds per seed (mean), the method's own scoring plus its apportioned share of the training "
        f"it needed (estimation run, K-fold models), on {', '.join(devices)}. Rank: by stability ρ.\n",
        tabulate(rows, headers=["method", "family", "natural: harder is", "stability ρ", f"stability Jaccard@{q}",
                                "rank", "seeds", "scoring (s)", "training share (s)", "total (s)"],
                 tablefmt="github"),
    ]

    names = sorted(summaries)
    spearman = np.full((len(names), len(names)), np.nan)
    jac = np.full_like(spearman, np.nan)
    for i, a in enumerate(names):
        row = summaries[a].get("agreement", {})
        for j, b in enumerate(names):
            if b in row:
                spearman[i, j] = np.nan if row[b]["spearman"] is None else row[b]["spearman"]
                jac[i, j] = row[b]["jaccard"]
    seeds_text = ", ".join(map(str, seeds_used[-1])) if seeds_used else ""
    for title, matrix in ((f"### Agreement: Spearman ρ between methods' mean scores (seeds {seeds_text})", spearman),
                          (f"### Agreement: Jaccard of hard sets H({q})", jac)):
        body = [[a, *(_fmt(v, 2) for v in matrix[i])] for i, a in enumerate(names)]
        text += ["", title + "\n", tabulate(body, headers=["", *names], tablefmt="github")]
    plots = {"meta_agreement.png": _heatmap(names, spearman, jac, q)} if names else {}
    section, summary = verdict_section("stability", verdict_rows(records)["stability"], METRIC,
                                       what="Replicates are disjoint pairs of estimation seeds (0-1, 2-3, …), "
                                            "so that no seed enters two replicates. ")
    return Report("\n".join([*text, "", section]), ranks, plots, {"stability": summary} if summary else {})
