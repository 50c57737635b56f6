"""The shape every track shares, and helpers for their runs and reports.

A track is a module with:

- ``NAME`` and ``Settings``: a frozen ``TrackSettings`` dataclass whose defaults are the
  track's defaults, with ``validate()`` (checked before anything trains);
- ``plan(engine, settings) -> list[Unit]``: every record the run should produce, as
  (config, method, seed) units; a unit's config holds every setting that affects it;
- ``run(engine, settings, todo)``: computes the units in ``todo`` (the engine's
  ``run_track`` passes only those without a current record: one path skips finished work);
- ``report(records) -> Report``: the leaderboard body, from the records alone;
- ``METRIC`` (a ``Metric``: its name, orientation, practical margin and control) and
  ``verdict_rows(records) -> {question: rows}``: what each of its verdicts ranks, the one
  source the board, ``bench compare`` and the overview read.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field, fields
from typing import ClassVar, NamedTuple

import numpy as np
from scipy.stats import rankdata
from tabulate import tabulate

from ..errors import UsageError
from ..protocol import ProtocolTrainer
from ..recipes import Recipe


class Unit(NamedTuple):
    """One record a track writes: its cell's config, the method and the seed."""
    config: dict
    method: str
    seed: int


@dataclass(frozen=True)
class TrackSettings:
    """A track's settings. Subclasses list their fields with defaults; ``ENUMERATED`` names
    the fields that only choose which cells run (types, rates, α values): the others are part
    of every record's config. ``RENAMED`` maps old option names to new ones, for a hint."""
    NAME: ClassVar[str] = ""
    ENUMERATED: ClassVar[tuple[str, ...]] = ()
    RENAMED: ClassVar[dict[str, str]] = {}

    def validate(self) -> None:
        """Raise ``UsageError`` naming the parameter, what is allowed and what was given."""

    def check_data(self, dataset, recipe: Recipe) -> None:
        """Raise ``UsageError`` where the track cannot run on this dataset with this recipe
        (checked once the dataset is loaded, before any track trains)."""

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def shared(self) -> dict:
        """The settings that are part of every record's config."""
        return {k: v for k, v in self.to_dict().items() if k not in self.ENUMERATED}

    def differences(self, reference: "TrackSettings | None" = None) -> dict:
        """The settings that differ from the track's defaults, or from ``reference`` (a profile's)."""
        default = (reference or type(self)()).to_dict()
        return {k: v for k, v in self.to_dict().items() if v != default[k]}

    @classmethod
    def build(cls, *layers: dict) -> "TrackSettings":
        """Defaults, then each layer (a profile's, then the user's ``--option`` values), each
        value coerced to its field's type; unknown keys are usage errors."""
        types = {f.name: str(f.type) for f in fields(cls)}
        values: dict = {}
        for layer in layers:
            for key, value in layer.items():
                if key not in types:
                    hint = f" (renamed: use {cls.NAME}.{cls.RENAMED[key]})" if key in cls.RENAMED else ""
                    raise UsageError(f"unknown option {cls.NAME}.{key}{hint}; {cls.NAME} options: "
                                     f"{', '.join(sorted(types)) or 'none'}")
                values[key] = coerce(f"{cls.NAME}.{key}", value, types[key])
        return cls(**values)

    def check_subset(self, name: str, allowed) -> None:
        values = getattr(self, name)
        bad = [v for v in (values or ()) if v not in allowed]
        if bad:
            raise UsageError(f"The {name!r} parameter of {self.NAME} must be a subset of "
                             f"{{{', '.join(map(str, allowed))}}}. Got {bad[0]!r} instead.")

    def check_choice(self, name: str, allowed) -> None:
        if getattr(self, name) not in allowed:
            raise UsageError(f"The {name!r} parameter of {self.NAME} must be one of "
                             f"{{{', '.join(map(str, allowed))}}}. Got {getattr(self, name)!r} instead.")

    def check_range(self, name: str, low: float, high: float, inclusive: bool = False) -> None:
        values = getattr(self, name)
        for v in values if isinstance(values, tuple) else (values,):
            if v is not None and not (low <= v <= high if inclusive else low < v < high):
                interval = f"[{low}, {high}]" if inclusive else f"({low}, {high})"
                raise UsageError(f"The {name!r} parameter of {self.NAME} must lie in {interval}. Got {v!r} instead.")


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


_SCALARS = {"int": int, "float": float, "str": str, "bool": bool}


def coerce(key: str, value, annotation: str):
    """A setting's value as its annotated type: ``int``, ``float``, ``str``, ``bool``, each
    optionally ``| None``, or ``tuple[T, ...]`` (a single value becomes a one-item tuple,
    ``none`` the empty tuple where the field cannot be None)."""
    optional = "None" in annotation
    element = re.search(r"tuple\[(\w+)", annotation)
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        if optional:
            return None
        if element:  # "none" for a list: the empty list
            return ()
        raise UsageError(f"--option {key} cannot be none")
    if element:
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(_scalar(key, v, element.group(1)) for v in items)
    return _scalar(key, value, re.match(r"\w+", annotation).group(0))


def _scalar(key: str, value, kind: str):
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    raise UsageError(f"--option {key} expects {'a whole number' if kind == 'int' else 'a ' + kind}, got {value!r}")


@dataclass
class Report:
    """A track's leaderboard body, each method's rank on it (1 = best), its plots, and its
    verdicts: per question the board answers, ``verdict(...)``'s summary for the overview."""
    markdown: str
    ranks: dict[str, float] = field(default_factory=dict)
    plots: dict[str, object] = field(default_factory=dict)  # file name -> matplotlib figure
    verdicts: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """What a track's verdicts rank by, read by the board, ``compare`` and the overview alike:
    the words for it, its orientation, the practical margin ``delta`` in its units (a
    difference smaller than ``delta`` is no difference to a user; docs/protocol.md says why
    each) and the track's control, the method that any answer must beat first."""
    name: str
    higher_is_better: bool = True
    delta: float = 0.02
    control: str = "random"


#: more distinct group letters than this are shown as the best's group alone ("a*")
MAX_GROUPS = 6


def verdict(rows, metric: Metric, costs: dict | None = None, evidence: str = "") -> tuple[dict, dict, dict]:
    """The evidence of one question on one board: from tidy rows (method, setting, seed, value),
    each method's mean value, rank, paired comparison with the best (``compare_with_best``:
    as good / worse / undecided at the metric's margin, Holm-corrected over the methods), group
    letters (``significance_letters``), whether the best beats the control by more than the
    margin (``beats_control``: a board whose best does not answers nothing) and the states at
    half and twice the margin. Returns (per-method table, letters, summary for the overview)."""
    from ..metrics import AS_GOOD, beats_control, compare_with_best, significance_letters, state_of

    rows = [r for r in rows if r[3] is not None and np.isfinite(r[3])]
    if not rows:
        return {}, {}, {}
    up = metric.higher_is_better
    compared = compare_with_best(rows, metric.delta, higher_is_better=up, control=metric.control)
    letters = significance_letters(rows, higher_is_better=up)
    if len({letter for value in letters.values() for letter in value}) > MAX_GROUPS:
        # overlapping groups past a handful are unreadable: mark those as good as the best
        letters = {m: "a*" if c["state"] == AS_GOOD else "" for m, c in compared.items()}
    means = {m: float(np.mean([r[3] for r in rows if r[0] == m])) for m in compared}
    ranks = ranks_by(means, up)
    settings, seeds = len({r[1] for r in rows}), len({r[2] for r in rows})
    best = next(iter(compared))
    control = beats_control(rows, best, metric.control, metric.delta, up)
    sensitivity = {label: {m: state_of(c, factor * metric.delta) for m, c in compared.items()}
                   for label, factor in (("half", 0.5), ("double", 2.0))}
    summary = {"metric": metric.name, "higher_is_better": up, "delta": metric.delta, "best": best,
               "control": metric.control, "versus_control": control,
               "answers": bool(control and control["beats"]), "settings": settings, "seeds": seeds,
               "ranked": len([m for m in compared if m != metric.control]),
               "evidence": evidence or f"{settings} setting(s) × {seeds} seed(s)",
               "sensitivity": sensitivity,
               "methods": {m: {"value": means[m], "rank": ranks[m], "state": c["state"], "diff": c["diff"],
                               "ci": c["ci"], "p_holm": c["p_holm"],
                               "seeds_needed": (math.ceil(c["pairs_needed"] / settings)
                                                if c.get("pairs_needed") else None),
                               "standalone_s": (costs or {}).get(m)} for m, c in compared.items()}}
    return compared, letters, summary


def state_text(entry: dict) -> str:
    """A method's answer against the best for a table: "as good", "worse", "undecided (6 seeds
    would settle it)"."""
    if entry["state"] != "undecided":
        return entry["state"]
    need = entry.get("seeds_needed")
    return f"undecided ({need} seeds would settle it)" if need else "undecided"


def control_text(summary: dict) -> str:
    """The board's first answer: does its best beat the control by more than the margin?"""
    versus, delta, control = summary["versus_control"], summary["delta"], summary["control"]
    if versus is None:
        return (f"**Control first: `{control}` did not run here, so nothing shows that the best beats chance; "
                "this board answers nothing.**")
    interval = f"{versus['diff']:+.3f}" + ("" if math.isnan(versus["ci"]) else f" ± {versus['ci']:.3f}")
    if summary["answers"]:
        return (f"Control first: the best, `{summary['best']}`, beats `{control}` by {interval} "
                f"(95% CI above the margin δ = {delta:g}).")
    return (f"**No identifier beats `{control}` here**: the best, `{summary['best']}`, differs from it by "
            f"{interval}, not above the margin δ = {delta:g} with 95% confidence. This board answers nothing.")


def sensitivity_text(summary: dict) -> str:
    """One line: whether the states change at half and twice the margin."""
    states = {m: v["state"] for m, v in summary["methods"].items()}
    parts = []
    for label, factor in (("half", "δ/2"), ("double", "2δ")):
        other = summary["sensitivity"][label]
        changed = sorted(m for m in states if other[m] != states[m])
        counts = ", ".join(f"{sum(s == name for s in other.values())} {name}"
                           for name in ("as good", "worse", "undecided"))
        moved = f"changes: {', '.join(f'{m} → {other[m]}' for m in changed)}" if changed else "no change"
        parts.append(f"at {factor} = {summary['delta'] * (0.5 if label == 'half' else 2):g}: {counts} ({moved})")
    return "Margin sensitivity: " + "; ".join(parts) + "."


def verdict_section(question: str, rows, metric: Metric, costs: dict | None = None,
                    what: str = "") -> tuple[str, dict]:
    """A board's answer to one question: first whether its best beats the control, then a table
    of each method's mean, its paired difference to the best (Holm-corrected), its group letters
    and its state against the best (as good / worse / undecided at the margin δ), and the line
    saying whether the states change at δ/2 and 2δ; and the summary for the overview."""
    compared, letters, summary = verdict(rows, metric, costs)
    if not compared:
        return "", {}
    table = [[m, f"{summary['methods'][m]['value']:.3f}", versus_best(compared[m]), letters.get(m, ""),
              state_text(summary["methods"][m])] for m in compared]
    text = (f"### Verdict: {question}\n\n{control_text(summary)}\n\n{what}Mean {metric.name} over "
            f"{summary['evidence']}; the paired difference to the best over the (setting, seed) pairs both have, "
            "Holm-corrected over the methods; methods sharing a group letter are not significantly different "
            "(`a*`: where the tests overlap into more than six groups, the methods as good as the best). "
            f"*As good*: the 95% CI of the difference lies above −δ (δ = {metric.delta:g}); *worse*: "
            "significantly below 0; *undecided*: neither.\n\n"
            + tabulate(table, headers=["method", f"mean {metric.name}", "vs best (paired)", "group",
                                       "against the best"], tablefmt="github")
            + "\n\n" + sensitivity_text(summary))
    return text, summary


def mean_costs(records: list[dict], key: str = "standalone_s") -> dict[str, float]:
    """Each method's mean cost ``key`` over its records that have one: ``standalone_s`` (were it run
    alone: its scoring plus all the training it needs) or ``shared_s`` (its share among those run)."""
    costs: dict[str, list[float]] = {}
    for r in records:
        if r.get("cost", {}).get(key) is not None:
            costs.setdefault(r["method"], []).append(r["cost"][key])
    return {m: float(np.mean(v)) for m, v in costs.items()}


def versus_best(entry: dict, digits: int = 3) -> str:
    """A method's paired difference to the best, ``-0.012 ± 0.004 (p_Holm 0.03)``, or "best"."""
    if entry["test"] == "best":
        return "best"
    half = "" if math.isnan(entry["ci"]) else f" ± {entry['ci']:.{digits}f}"
    p = "" if math.isnan(entry["p_holm"]) else f" (p_Holm {entry['p_holm']:.2g})"
    return f"{entry['diff']:+.{digits}f}{half}{p}"


def group(records, *keys) -> dict[tuple, list[dict]]:
    """Records grouped by the given top-level or config keys, e.g. ("method",) or ("config.rate",)."""
    groups = defaultdict(list)
    for record in records:
        groups[tuple(_get(record, k) for k in keys)].append(record)
    return dict(groups)


def _get(record: dict, key: str):
    value = record
    for part in key.split("."):
        value = value[part]
    return value if not isinstance(value, list) else tuple(value)


def ranks_by(values: dict[str, float], higher_is_better: bool = True) -> dict[str, float]:
    """Average ranks (1 = best, ties share the mean rank)."""
    names = list(values)
    array = np.array([values[n] for n in names], dtype=float)
    ranked = rankdata(-array if higher_is_better else array, method="average")
    return dict(zip(names, ranked.tolist()))


def method_grid(methods: list[str], draw, title: str, xlabel: str, ylabel: str, panel_width: float = 3.3):
    """A figure with one small panel per method, each drawn by ``draw(ax, method)``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(methods))
    rows = math.ceil(len(methods) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel_width * cols, 2.6 * rows), squeeze=False, sharey=True)
    for ax, method in zip(axes.flat, methods):
        draw(ax, method)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel(xlabel)
    for ax in axes.flat[len(methods):]:
        ax.axis("off")
    axes[0, 0].set_ylabel(ylabel)
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def protocol_recipe(engine, epochs: int | None) -> Recipe:
    """The recipe of a track's protocol models: the run's, with ``epochs`` where set, else the
    recipe's ``protocol_epochs`` where set."""
    from dataclasses import replace

    chosen = epochs if epochs is not None else engine.recipe.protocol_epochs
    return engine.recipe if chosen is None else replace(engine.recipe, epochs=chosen)


def trainer_for(engine, pool, evals: dict, recipe: Recipe | None = None,
                desc: str = "protocol models") -> ProtocolTrainer:
    """The protocol trainer of an engine's pool, caching in the store's protocol folder."""
    recipe = recipe or engine.recipe
    cache = engine.protocol_dir(pool, recipe)
    return ProtocolTrainer(recipe, pool.x, pool.y, pool.num_classes, pool.key, evals, cache,
                           quiet=engine.quiet, desc=desc)


def method_scores(engine, pool) -> dict[str, dict]:
    """Each method's scores on the pool, averaged over the estimation seeds:
    ``{"scores": oriented (higher = harder), "natural": own units, "higher_is_harder": bool}``.
    A method that failed on any seed is left out (the engine lists it as failed)."""
    engine.prepare([(pool, seed) for seed in engine.seeds])
    per_seed = [engine.scores(pool, seed) for seed in engine.seeds]
    out = {}
    for method in engine.methods:
        results = [r[method.name] for r in per_seed]
        if all(r.status == "ok" for r in results):
            out[method.name] = {"scores": np.mean([r.scores for r in results], axis=0),
                                "natural": np.mean([r.natural for r in results], axis=0),
                                "higher_is_harder": method.higher_is_harder}
    return out


def protocol_seeds(count: int) -> list[int]:
    """Protocol-model seeds, disjoint from the estimation seeds 0..S-1."""
    return [1000 + r for r in range(count)]


def draw_seed(split_seed: int, protocol_seed: int) -> int:
    """The seed of one protocol seed's own draw (split, subsets, resampled set): every protocol
    seed redraws, so an interval over protocol seeds covers the draw as well as the models."""
    return int(np.random.SeedSequence([split_seed, protocol_seed]).generate_state(1)[0] >> 1)


def per_method_units(engine, configs: list[dict], seeds: list[int]) -> list[Unit]:
    """Every (config, method, seed) of the engine's methods."""
    return [Unit(config, m.name, seed) for m in engine.methods for config in configs for seed in seeds]
