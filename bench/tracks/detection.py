"""Track D: detection of planted hardness (docs/protocol.md, "Track D").

For each seed s, hardness type t and rate p: plant t at rate p in a random subset
M of the train split (seeded by s; ``bench.inject``), run the estimation with seed
s, and score each method's oriented scores against M: AUPRC (M = positive), AUROC,
precision@|M|, beside the random baseline AUPRC = |M| / N.

Types (``bench.inject``): ``label-uniform``, ``label-pair``, ``label-instance``,
``label-adjacent``, ``near-ood``, ``far-ood``, ``domain-shift``, ``crop-shift``, ``atypical``
(settings ``types`` and ``rates``; by default every type at p = 0.1; the ``full``
profile every type at every rate in {0.05, 0.1, 0.2}). A dataset that carries clean
labels (``Dataset.y_clean_train``: an npz with ``y_clean``, CIFAR-10N / CIFAR-100N) is
also scored as type ``real``, automatically: the pool is the train split with its given
labels, nothing planted, and the positives are the samples whose given label differs from
the clean one; its ``rate`` is the dataset's observed noise rate.

``label-pair`` moves labels along the most-confused class pairs of a clean model (the
out-of-sample confusion matrix of the K-fold models on the clean train split,
``Estimator.clean_confusion``); ``far-ood`` samples come from the engine's planting
sources (``bench.inject.default_sources`` of the dataset and ``--data-root``).

Report: a table per (type, rate), a method x type table and heatmap of mean AUPRC, and
the overall ranking over (type, rate, seed) blocks: Friedman test, Nemenyi critical
difference and a critical-difference diagram (scikit-posthocs). Scores are never flipped.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from tabulate import tabulate
from tqdm import tqdm

from ..context import Pool
from ..inject import PLANTERS
from ..metrics import detection_metrics, format_ci, friedman_nemenyi, seed_averaged_matrix
from .base import (Metric, Report, TrackSettings, Unit, control_text, group, mean_costs, per_method_units,
                   sensitivity_text, state_text, verdict, versus_best)

log = logging.getLogger("bench")

NAME = "detection"
TYPES = list(PLANTERS)
REAL = "real"
#: what the verdicts rank by (docs/protocol.md, "Statistics": why 0.02)
METRIC = Metric("AUPRC", higher_is_better=True, delta=0.02)


@dataclass(frozen=True)
class Settings(TrackSettings):
    NAME = "detection"
    ENUMERATED = ("types", "rates")
    types: tuple[str, ...] = tuple(TYPES)
    rates: tuple[float, ...] = (0.1,)

    def validate(self) -> None:
        self.check_subset("types", [*PLANTERS, REAL])
        self.check_range("rates", 0.0, 1.0)


def configs(engine, settings: Settings) -> list[dict]:
    out = [{"type": t, "rate": float(p)} for t in settings.types if t != REAL for p in settings.rates]
    clean = getattr(engine.dataset, "y_clean_train", None)
    if clean is not None:
        out.append({"type": REAL, "rate": round(float((engine.dataset.y_train != clean).float().mean()), 4)})
    elif REAL in settings.types:
        engine.warn_once(f"detection-real-{engine.dataset.key}",
                         "detection type 'real' needs clean labels (npz 'y_clean', cifar10n/cifar100n); "
                         f"dataset {engine.dataset.name} has none")
    return out


def plan(engine, settings: Settings) -> list[Unit]:
    return per_method_units(engine, configs(engine, settings), engine.seeds)


def detection_pool(engine, config: dict, seed: int) -> Pool:
    """The pool of one (type, rate, seed) cell, with its positives in ``pool.planted``."""
    if config["type"] == REAL:
        pool = engine.pool("train")
        clean = engine.dataset.y_clean_train[torch.as_tensor(pool.rows)]
        return replace(pool, planted=(pool.y.cpu() != clean).numpy())
    return engine.pool("train", (config["type"], config["rate"]), seed)


def planting_check(engine, pool: Pool, config: dict) -> dict | None:
    """What a clean model that never trained on the planted samples reads in them
    (``bench.planting_check``): recorded with every record of the cell, shown on the board."""
    from ..planting_check import check_planting

    clean = engine.pool("train")
    rows = np.flatnonzero(pool.planted)
    index = torch.as_tensor(rows, device=pool.x.device)
    try:
        result = check_planting(engine.estimator.clean_predict, config["type"], pool.x[index], clean.x[index],
                                pool.y[index].cpu().numpy(), clean.y[index].cpu().numpy(), rows, pool.num_classes)
    except Exception as error:  # noqa: BLE001 - a check that cannot run is said, not fatal
        engine.warn_once(f"check-{config['type']}", f"planting check of {config['type']} not run: {error}")
        return None
    return {**result.as_dict(), "summary": result.summary()}


def run(engine, settings: Settings, todo: list[Unit]) -> None:
    cells = group([{"config": u.config, "seed": u.seed, "method": u.method} for u in todo], "config.type",
                  "config.rate", "seed")
    pools = {key: detection_pool(engine, {"type": key[0], "rate": key[1]}, key[2]) for key in cells}
    engine.prepare([(pool, key[2]) for key, pool in pools.items()])
    for key, pool in tqdm(pools.items(), desc="detection", disable=engine.quiet):
        config, seed = cells[key][0]["config"], key[2]
        if not pool.planted.any() or pool.planted.all():
            log.warning("detection %s: the pool has %d positives of %d; nothing to score",
                        config, int(pool.planted.sum()), len(pool))
            continue
        check = planting_check(engine, pool, config) if config["type"] != REAL else None
        scores = engine.scores(pool, seed)
        for unit in cells[key]:
            name = unit["method"]
            if scores[name].status == "ok":
                engine.write_record(NAME, config, name, seed,
                                    detection_metrics(scores[name].scores, pool.planted, seed),
                                    cost=scores[name].cost, pool=pool.key, planting_check=check)


# ---- report ------------------------------------------------------------------------------
#: the questions the detection board answers: which kinds each one pools
QUESTIONS = {"label noise": ("label-uniform", "label-pair", "label-instance", "label-adjacent", REAL),
             "out-of-distribution": ("near-ood", "far-ood", "domain-shift", "crop-shift"), "atypical": ("atypical",)}


def _label_blind(name: str) -> bool:
    from .. import registry

    return name in registry.list_methods() and registry.get_method(name).label_blind


def _ranked(records: list[dict], kinds) -> tuple[list[dict], list[dict]]:
    """The records ranked on these kinds, and those tabled apart: label-blind methods on label noise."""
    label_noise = set(kinds) <= set(QUESTIONS["label noise"])
    apart = [r for r in records if label_noise and _label_blind(r["method"])]
    return [r for r in records if r not in apart], apart


def _rows(records: list[dict]) -> list[tuple]:
    return [(r["method"], (r["config"]["type"], r["config"]["rate"]), r["seed"], r["metrics"]["auprc"])
            for r in records]


def _table(records: list[dict], compared: dict, letters: dict) -> str:
    by_method = group(records, "method")
    shared, standalone = mean_costs(records, "shared_s"), mean_costs(records)
    order = list(compared) + sorted({m for (m,) in by_method} - set(compared))
    rows = []
    for method in order:
        rs = by_method[(method,)]
        metric = lambda name: [r["metrics"][name] for r in rs]  # noqa: E731
        own = np.mean([r["cost"]["scoring_s"] for r in rs])
        rows.append([method, format_ci(metric("auprc")), format_ci(metric("auroc")), format_ci(metric("precision_at_m")),
                     versus_best(compared[method]) if method in compared else "–", letters.get(method, "–"),
                     len(rs), f"{own + shared.get(method, math.nan):.2f}",
                     f"{standalone.get(method, math.nan):.2f}"])
    return tabulate(rows, headers=["method", "AUPRC", "AUROC", "precision@M", "AUPRC vs best (paired)", "group", "seeds",
                                   "cost, shared (s)", "cost, alone (s)"], tablefmt="github")


def _spread(records: list[dict]) -> float:
    """Best minus median of the methods' mean AUPRC."""
    means = [np.mean([r["metrics"]["auprc"] for r in rs]) for rs in group(records, "method").values()]
    return max(means) - float(np.median(means))


def _separation(letters: dict, records: list[dict]) -> str:
    """How much a table separates its methods: best minus median AUPRC, and the groups told apart."""
    groups = len({letter for value in letters.values() for letter in value.rstrip("*")})
    return (f"Separation: best − median AUPRC = {_spread(records):.3f}; "
            f"{groups} group{'s' * (groups != 1)} told apart by the paired tests.")


#: the best − median AUPRC a setting must reach to tell methods apart (a setting where all score alike says nothing)
SEPARATES = 0.05


def _separation_by_kind(records: list[dict]) -> str:
    """Per kind, the setting (rate) that separates the ranked methods most, and whether any reaches ``SEPARATES``."""
    rows, short = [], []
    for (kind,), cell in sorted(group(records, "config.type").items()):
        spreads = {rate: _spread(_ranked(rs, (kind,))[0]) for (rate,), rs in group(cell, "config.rate").items()}
        rate = max(spreads, key=spreads.get)
        rows.append([kind, f"{rate:g}", f"{spreads[rate]:.3f}", "yes" if spreads[rate] >= SEPARATES else "no"])
        if spreads[rate] < SEPARATES:
            short.append(kind)
    return ("### Which settings tell the methods apart\n\nPer kind, the rate whose table separates the ranked methods "
            f"most (best − median AUPRC); a setting below {SEPARATES} says little about which identifier to trust."
            + (f" **No setting tried here separates the methods on {', '.join(short)}.**" if short else "")
            + "\n\n" + tabulate(rows, headers=["kind", "rate", "best − median AUPRC", f"≥ {SEPARATES}"],
                                 tablefmt="github", disable_numparse=True))


def _check_line(cell: list[dict]) -> str:
    checks = {r["seed"]: r["planting_check"] for r in cell if r.get("planting_check")}
    if not checks:
        return ""
    held = sum(c["holds"] for c in checks.values())
    hard = (f"; hard for {sum(c['hard'] for c in checks.values())} of {len(checks)}"
            if all("hard" in c for c in checks.values()) else "; hardness not measured")
    first = checks[min(checks)]
    return (f"Planting check (a clean K-fold model that never trained on the samples; docs/protocol.md): "
            f"valid for {held} of {len(checks)} seeds{hard}; seed {min(checks)}: {first['summary']}\n\n")


def _published(cell: list[dict]) -> str:
    """Published detection figures for the real-noise data they concern (CIFAR-10N aggregate), beside ours,
    with what keeps them from applying directly."""
    if not any("cifar10n" in r["dataset"].lower() or "cifar-10n" in r["dataset"].lower() for r in cell):
        return ""
    ours = {m: np.mean([r["metrics"]["auroc"] for r in cell if r["method"] == m]) for m in ("holdout", "cleanlab")}
    ours_text = ", ".join(f"`{m}` AUROC {v:.3f}" for m, v in ours.items() if np.isfinite(v)) or "not run"
    return ("\n\n**Published figures (CIFAR-10N aggregate labels), and where they apply.** In the released label "
            "file 4,505 of the 50,000 aggregate labels differ from the clean ones (9.01%; Wei et al. 2022, ICLR, "
            "report 9.03%). Kuan & Mueller 2022 (cleanlab's label-error-detection-benchmarks, notebook "
            "`cifar-10n-aggregate/3_Evaluate_Scores.ipynb`) score the out-of-fold self-confidence p_y of 5-fold "
            "cross-validation on all 50,000 images, with networks of ResNet-18 to Swin-B size trained 100 epochs "
            "(AutoGluon): AUROC 0.977 (ResNet-18) to 0.996 (Swin-B); `find_label_issues` (prune by noise rate) on "
            "Swin-B's probabilities: F1 0.763, precision 0.981, recall 0.624. The identifier here closest to their "
            f"score is `holdout` (out-of-fold p_y); `cleanlab` is `find_label_issues` ranked by margin: {ours_text}. "
            "They do not apply directly: here 4,000 images, not 50,000, and a narrow airbench network trained from "
            "scratch on 2 CPU cores (its clean accuracy is in the header), so a lower AUROC here reflects the "
            "smaller data and model as much as the identifiers.")


def report(records: list[dict]) -> Report:
    sections = []
    for (kind, rate), cell in sorted(group(records, "config.type", "config.rate").items()):
        ranked, apart = _ranked(cell, (kind,))
        compared, letters, _ = verdict(_rows(ranked), METRIC)
        baseline = np.mean([r["metrics"]["baseline"] for r in cell])
        what = ("real label noise (given label ≠ clean label), observed rate" if kind == REAL else "rate")
        left_out = unfit(cell)
        note = (f"**{kind} {rate:g}: {left_out}: nothing to detect; left out of the overall verdicts.**\n\n"
                if left_out else "")
        text = (f"### {kind}, {what} {rate}\n\n{_check_line(cell)}{note}Random AUPRC baseline: {baseline:.3f}. "
                "Means ± 95% CI over estimation seeds (one seed: no interval); planted samples are the positives. "
                "*AUPRC vs best*: the paired difference to the best method over seeds, with its Holm-corrected "
                "p-value; methods sharing a *group* letter are not significantly different (where the tests "
                "overlap into more than six groups, `a*` marks those as good as the best). "
                "Cost per seed: the "
                "method's scoring plus its share of the training it needed among the methods run here (*shared*), "
                "or plus all of that training (*alone*).\n\n" + _table(ranked, compared, letters)
                + f"\n\n{_separation(letters, ranked)}" + (_published(cell) if kind == REAL else ""))
        if apart:
            text += ("\n\nLabel-blind methods (they never read the sample's own label, so they cannot see label "
                     "noise by construction; not ranked here):\n\n" + _table(apart, {}, {}))
        sections.append(text)
    by_type, plots = _by_type(records)
    overall, ranks, verdicts, cd_plot = _overall(records)
    plots.update(cd_plot)
    return Report("\n\n".join([*sections, by_type, _separation_by_kind(records), _averaging_note(records), overall]),
                  ranks, plots, verdicts)


def _averaging_note(records: list[dict]) -> str:
    from .. import registry

    names = sorted({r["method"] for r in records} & set(registry.list_methods()))
    several = [m for m in names if registry.get_method(m).needs & {"folds", "early_runs", "ensemble"}]
    return ("Methods that average several models (K-fold models, independent early runs or K full runs, see the "
            "recipe: folds × fold_repeats, early_runs), compared here with single-run methods at their own budgets "
            "(`aum_ens` and `msp_ens` are `aum` and `msp` averaged over K full runs, to tell averaging from the "
            "identifier): "
            + (", ".join(f"`{m}`" for m in several) or "none") + ".")


def _by_type(records: list[dict]) -> tuple[str, dict]:
    """Mean AUPRC per method and type (over rates and seeds), as a table and a heatmap."""
    types = sorted({r["config"]["type"] for r in records})
    methods = sorted({r["method"] for r in records})
    cells = group(records, "method", "config.type")
    matrix = np.array([[np.mean([r["metrics"]["auprc"] for r in cells[(m, t)]]) if (m, t) in cells else np.nan
                        for t in types] for m in methods])
    baselines = [np.mean([r["metrics"]["baseline"] for r in records if r["config"]["type"] == t]) for t in types]
    order = np.argsort(-np.nanmean(matrix, axis=1), kind="stable")
    rows = [[methods[i], *(f"{v:.3f}" if np.isfinite(v) else "–" for v in matrix[i])] for i in order]
    rows.append(["(random baseline)", *(f"{b:.3f}" for b in baselines)])
    text = ("### AUPRC by hardness type\n\nMean AUPRC over rates and seeds; the last row is the mean random "
            "baseline (the positives' share).\n\n" + tabulate(rows, headers=["method", *types], tablefmt="github"))
    return text, {"detection-auprc-by-type.png": _heatmap(matrix[order], [methods[i] for i in order], types)}


def _heatmap(matrix: np.ndarray, methods: list[str], types: list[str]):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.1 * len(types) + 2.5, 0.32 * len(methods) + 1.4))
    image = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(types)), types, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(methods)), methods, fontsize=8)
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                    color="black" if value > 0.6 else "white")
    fig.colorbar(image, ax=ax, label="mean AUPRC")
    ax.set_title("Detection: mean AUPRC by hardness type", fontsize=10)
    fig.tight_layout()
    return fig


def unfit(cell: list[dict]) -> str | None:
    """Why the planted samples of one (type, rate) cell give the verdicts nothing to rank, or None:
    the planting check (``bench.planting_check``) finds them not valid, or not hard (a clean
    model's p_y on them less than 0.15 below the originals', overall or in some class), on some
    seed, or did not measure their hardness. Real noise is not planted: never unfit."""
    checks = [r.get("planting_check") for r in cell if r["config"]["type"] != REAL]
    if not checks:
        return None
    if any(c is None or "hard" not in c for c in checks):
        return "hardness not measured"
    if not all(c["holds"] for c in checks):
        return "not valid on some seed"
    if not all(c["hard"] for c in checks):
        return "not hard on some seed"
    return None


def _fit_cells(records: list[dict]) -> tuple[list[dict], dict[tuple, str]]:
    """The records of cells fit to rank, and the unfit cells with why."""
    cells = group(records, "config.type", "config.rate")
    why = {key: reason for key, cell in cells.items() if (reason := unfit(cell))}
    return [r for key, cell in cells.items() if key not in why for r in cell], why


def _question_records(records: list[dict]) -> dict[str, list[dict]]:
    """Per question (``QUESTIONS``) with records, the records of its ranked methods."""
    out = {}
    for question, kinds in QUESTIONS.items():
        ranked, _ = _ranked([r for r in records if r["config"]["type"] in kinds], kinds)
        if ranked:
            out[question] = ranked
    return out


def unanswered(records: list[dict]) -> dict[str, str]:
    """The questions none of whose cells is fit to rank (``unfit``), with why."""
    out = {}
    for question, ranked in _question_records(records).items():
        fit, why = _fit_cells(ranked)
        if not fit:
            out[question] = "; ".join(f"{t} {rate:g}: {reason}" for (t, rate), reason in sorted(why.items()))
    return out


def verdict_rows(records: list[dict]) -> dict[str, list]:
    """Per question the board answers, the rows its verdict ranks: (method, (type, rate), seed,
    AUPRC) of the ranked methods, over the cells fit to rank (``unfit``): planted samples that
    are not valid or not hard give nothing to detect."""
    rows = {}
    for question, ranked in _question_records(records).items():
        fit, _ = _fit_cells(ranked)
        if fit:
            rows[question] = _rows(fit)
    return rows


def _overall(records: list[dict]) -> tuple[str, dict[str, float], dict, dict]:
    """Per question (``QUESTIONS``): Friedman test and Nemenyi critical difference over its
    (type, rate) settings, each method's AUPRC averaged over seeds first (settings, not seeds,
    are the blocks); the paired comparison of every method with the best over (setting, seed)
    pairs, Holm-corrected; group letters; a critical-difference diagram."""
    texts, ranks, verdicts, plots = ["### Overall, per question"], {}, {}, {}
    for question, why in unanswered(records).items():
        texts.append(f"#### {question}\n\n**{question}: nothing to detect** (the planting check: {why}); this board "
                     "does not answer the question.")
    by_question = {q: _fit_cells(ranked)[0] for q, ranked in _question_records(records).items()}
    for question, question_rows in verdict_rows(records).items():
        ranked = by_question[question]
        costs = mean_costs(ranked)
        seeds = sorted({r["seed"] for r in ranked})
        settings = sorted({(r["config"]["type"], r["config"]["rate"]) for r in ranked})
        compared, letters, summary = verdict(question_rows, METRIC, costs=costs,
                                             evidence=f"{len(settings)} setting(s) × {len(seeds)} seed(s)")
        matrix, blocks, methods = seed_averaged_matrix(question_rows)
        stats = friedman_nemenyi(matrix) if len(methods) else None
        test = (f"Friedman χ² = {stats['statistic']:.2f}, p = {stats['p']:.2g} over {stats['blocks']} settings; "
                f"Nemenyi critical difference {stats['cd']:.2f}" if stats and np.isfinite(stats["p"])
                else "no Friedman test: it needs at least 2 settings and 3 methods")
        mean_ranks = dict(zip(methods, stats["mean_ranks"].tolist())) if stats else {}
        rows = [[m, f"{summary['methods'][m]['value']:.3f}", f"{mean_ranks[m]:.2f}" if m in mean_ranks else "–",
                 versus_best(compared[m]), letters.get(m, ""), state_text(summary["methods"][m]),
                 f"{costs.get(m, math.nan):.2f}"] for m in compared]
        texts.append(f"#### {question} ({', '.join(sorted({k for k, _ in settings}))})\n\n{control_text(summary)}"
                     f"\n\n{test}. Mean AUPRC over settings and seeds; mean rank over settings (seed-averaged); the "
                     "paired difference to the best over (setting, seed) pairs, Holm-corrected over the methods; "
                     f"*as good*: its 95% CI above −δ (δ = {METRIC.delta:g}), *worse*: significantly below 0, "
                     "*undecided*: neither.\n\n"
                     + tabulate(rows, headers=["method", "mean AUPRC", "mean rank", "vs best (paired)", "group",
                                               "against the best", "cost alone (s)"], tablefmt="github")
                     + "\n\n" + sensitivity_text(summary))
        verdicts[question] = summary
        if question == "label noise" or not ranks:
            ranks = {m: v["rank"] for m, v in summary["methods"].items()}
        if stats and np.isfinite(stats["p"]):
            figure = _cd_diagram(matrix, methods, mean_ranks, stats["cd"])
            if figure is not None:
                plots[f"detection-critical-difference-{question.replace(' ', '-')}.png"] = figure
    return "\n\n".join(texts), ranks, verdicts, plots


def _cd_diagram(matrix: np.ndarray, methods: list[str], mean_ranks: dict[str, float], cd: float):
    """Critical-difference diagram (scikit-posthocs): mean ranks on the axis, methods that the
    Nemenyi post-hoc test (after Friedman) does not separate at α = 0.05 joined by a bar."""
    try:
        import pandas as pd
        import scikit_posthocs as sp
    except ImportError:
        log.warning("scikit-posthocs is not installed; no critical-difference diagram")
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p_values = sp.posthoc_nemenyi_friedman(pd.DataFrame(matrix, columns=methods))
    p_values = p_values.fillna(1.0)
    fig, ax = plt.subplots(figsize=(7, 0.25 * len(methods) + 1.5))
    sp.critical_difference_diagram(pd.Series(mean_ranks), p_values, ax=ax, label_props={"fontsize": 8})
    ax.set_title(f"Detection: mean AUPRC rank over {len(matrix)} blocks (1 = best); Nemenyi CD = {cd:.2f}",
                 fontsize=9)
    fig.tight_layout()
    return fig
