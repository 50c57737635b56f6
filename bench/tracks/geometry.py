"""Track G: exact geometry of ReLU networks on 2-D data as hardness ground truth
(docs/protocol.md, "Track G"; SkelEx / BoundEx, Pukowski & Lu 2023).

On a dataset of 2-D points (``moons``, ``spirals``, ``spirals3``, ``blobs2d``, an npz of
2-D points) a ReLU MLP is piecewise affine; its linear regions and decision boundary are
extracted exactly (``bench.relu_geometry``) over the pool's bounding box grown by ``margin`` of
its size on each side. The ground-truth hardness of a pool sample is

    h_i = -d_i,  d_i = the sample's Euclidean distance to the decision boundary,
                 signed + when the boundary's side is the sample's label, - when not,

so samples far on the wrong side are hardest and samples far on the right side easiest.
No method is scored against the network it reads. Two ground truths:

- the **reference network**: for estimation seed s, a separately trained network of the
  same recipe and data, seed ``REFERENCE + s``; metrics ``spearman``, ``kendall``, ``auprc``;
- the **Bayes-optimal boundary**, where the generating distribution is known (``blobs2d``
  exactly; ``moons``, ``spirals``, ``spirals3`` by their noise model:
  ``bench.relu_geometry.bayes_geometric_hardness``); metrics ``bayes_spearman`` etc.

Each method's oriented scores (higher = harder) of seed s are compared with both:

- ``spearman``, ``kendall``: rank correlations with h (positive = agrees);
- ``auprc``: AUPRC of the scores for the ground truth's hardest ``q`` (default 10%: the
  ceil(q N) highest h, ties in a seeded random order; sklearn ``average_precision_score``);
  ``baseline`` is the positives' share (≈ q).

The pool is the train pool (``--pool-size`` aware), in the network's (normalised) input
space. Every record carries the seed's geometry facts (``geometry``: regions, regions per
hidden layer, boundary segments and length, misclassified share, the share of samples
whose distance is certified global, extraction seconds); seed 0's records carry the
method's hard set (``hard_set``: pool indices), and the track's own record ``_network``
(seed 0) the ``drawing`` the plots need: the network's layers, the pool's points and
labels, the box and the ground truth's hard set, arrays packed as base64 (``pack``;
~30 kB for moons, ~65 kB for spirals). The report
re-extracts the regions from those layers (exact; ~1 s for ~20,000 regions) and draws
``geometry_regions_*.png`` (seed 0: class cells, region edges, boundary, data),
``geometry_hard_sets_*.png`` (one panel per method and one for the ground truth, the
hardest q circled) and ``geometry_regions_per_layer_*.png`` (bars per seed).

A sample's distance is *certified* when it is at most the sample's distance to the box
border: no boundary point outside the box can then be nearer. The default margin 0.5
certifies every sample on moons, spirals and blobs2d (0.1 left 1-11% uncertified, whose
distances came out the same); raise it (``--option geometry.margin=1.0``) if the share
in the report's geometry table is below 100%. The plots show the pool's bounding box
grown by ``VIEW_MARGIN``.

A dataset whose inputs are not 2-D gets no records, and the track says so once; a recipe
whose network is not a ReLU MLP is a usage error (``check_relu_mlp``).
"""
from __future__ import annotations

import base64
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from tabulate import tabulate

from .. import relu_geometry
from ..errors import UsageError
from ..metrics import agreement_metrics, format_ci, hard_set, mean_ci
from .base import Metric, Report, TrackSettings, Unit, group, per_method_units, ranks_by, verdict_section

log = logging.getLogger("bench")

NAME = "geometry"
VIEW_MARGIN = 0.1  # the plots show the pool's bounding box grown by this much
NETWORK = "_network"  # the track's own record (seed 0): the network's drawing, not a method's result
REFERENCE = 1000  # the ground truth's network of seed s is trained with seed REFERENCE + s: never the one scored


@dataclass(frozen=True)
class Settings(TrackSettings):
    NAME = "geometry"
    q: float = 0.1
    margin: float = 0.5

    def validate(self) -> None:
        self.check_range("q", 0.0, 1.0)
        self.check_range("margin", 0.0, 100.0, inclusive=True)

    def check_data(self, dataset, recipe) -> None:
        if is_planar(dataset):
            check_relu_mlp(recipe, dataset.num_classes)


def plan(engine, settings: Settings) -> list[Unit]:
    data = engine.dataset
    if not is_planar(data):
        engine.warn_once(f"geometry-{data.key}",
                         f"geometry: dataset {data.key} has inputs of shape {tuple(data.input_shape)}; the geometry "
                         "track applies to 2-D data only (moons, spirals, spirals3, blobs2d, an npz of 2-D points); "
                         "nothing written")
        return []
    config = {"pool": engine.pool("train").key, **settings.shared()}
    return [*per_method_units(engine, [config], engine.seeds), Unit(config, NETWORK, 0)]


def is_planar(dataset) -> bool:
    return tuple(dataset.input_shape) == (2,)


def check_relu_mlp(recipe, num_classes: int = 2) -> None:
    """UsageError (one line) unless the recipe builds a network ``bench.relu_geometry`` can
    extract exactly: Linear and ReLU layers only, on 2-D inputs."""
    try:
        relu_geometry.network_layers(recipe.build((2,), num_classes))
    except (TypeError, ValueError, KeyError) as error:
        reason = " ".join(str(error).split())
        raise UsageError(f"the geometry track needs a ReLU MLP (model mlp, activation relu; e.g. --recipe skelex); "
                         f"recipe model={recipe.model} {recipe.model_kwargs} is not one: {reason}") from None


# ---- ground truth -------------------------------------------------------------------
def ground_truth(model, points: np.ndarray, labels: np.ndarray, box) -> dict | None:
    """The exact extraction of one network over ``box``: ``hardness`` (N,) = -signed
    boundary distance, ``facts`` (JSON-ready), ``regions``, ``boundary``. None when the
    box holds no decision boundary (the network predicts one class everywhere)."""
    start = time.perf_counter()
    regions = relu_geometry.linear_regions(model, box)
    boundary = relu_geometry.decision_boundary(regions)
    seconds = time.perf_counter() - start
    if len(boundary.segments) == 0:
        return None
    hardness = relu_geometry.geometric_hardness(regions, points, labels, boundary=boundary)
    xmin, xmax, ymin, ymax = regions.box
    to_border = np.minimum.reduce([points[:, 0] - xmin, xmax - points[:, 0], points[:, 1] - ymin, ymax - points[:, 1]])
    facts = {"regions": len(regions), "regions_per_layer": [int(c) for c in regions.counts_per_layer],
             "boundary_segments": len(boundary.segments), "boundary_length": float(boundary.length),
             "misclassified": float((hardness > 0).mean()), "certified": float((np.abs(hardness) <= to_border).mean()),
             "extraction_seconds": round(seconds, 4), "box": [float(v) for v in regions.box]}
    return {"hardness": hardness, "facts": facts, "regions": regions, "boundary": boundary}


# ---- packing arrays into records ------------------------------------------------------
def pack(array) -> dict:
    """An array as JSON: dtype, shape and base64 bytes; float64 values that float32 holds
    exactly (trained float32 weights, float32 data) are stored as float32."""
    a = np.asarray(array)
    if a.dtype == np.float64 and np.array_equal(a.astype(np.float32).astype(np.float64), a):
        a = a.astype(np.float32)
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return {"dtype": a.dtype.str, "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def unpack(packed: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(packed["b64"]), dtype=np.dtype(packed["dtype"])).reshape(packed["shape"])


def network_from_layers(layers) -> torch.nn.Sequential:
    """A float64 ``nn.Sequential`` of Linear and ReLU with exactly these affine layers."""
    modules = []
    for i, (weight, bias) in enumerate(layers):
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.tensor(np.array(weight, dtype=np.float64)))
            linear.bias.copy_(torch.tensor(np.array(bias, dtype=np.float64)))
        modules += [linear] + ([torch.nn.ReLU()] if i < len(layers) - 1 else [])
    return torch.nn.Sequential(*modules)


def _drawing(regions, points: np.ndarray, labels: np.ndarray, truth_hard: np.ndarray) -> dict:
    return {"layers": [[pack(w), pack(b)] for w, b in regions.layers], "x": pack(points),
            "y": [int(v) for v in labels], "box": [float(v) for v in regions.box],
            "view": list(relu_geometry.default_box(points, VIEW_MARGIN)),
            "num_classes": int(regions.num_classes), "truth_hard_set": [int(i) for i in truth_hard]}


# ---- run ----------------------------------------------------------------------------
def run(engine, settings: Settings, units: list[Unit]) -> None:
    data = engine.dataset
    q, margin = settings.q, settings.margin
    pool = engine.pool("train")
    config = units[0].config
    todo: dict[int, list[str]] = {}
    for unit in units:
        todo.setdefault(unit.seed, []).append(unit.method)
    seeds = sorted(todo)
    engine.prepare([(pool, seed) for seed in seeds])
    points = pool.x.detach().cpu().numpy().reshape(len(pool), 2).astype(np.float64)
    labels = pool.y.detach().cpu().numpy()
    box = relu_geometry.default_box(points, margin)
    bayes = (relu_geometry.bayes_geometric_hardness(data.name, points, labels, normalised=True)
             if data.name in relu_geometry.BAYES_DATASETS else None)
    for seed in seeds:
        scores = engine.scores(pool, seed)
        # the ground truth's network is another training run (seed REFERENCE + s), never the one the methods read
        truth = ground_truth(engine.final_model(pool, REFERENCE + seed), points, labels, box)
        if truth is None:
            log.warning("geometry: the %s network of seed %d predicts one class everywhere in the box; no decision "
                        "boundary, no ground truth: seed %d skipped", data.key, seed, seed)
            continue
        if NETWORK in todo[seed]:
            engine.write_record(NAME, config, NETWORK, seed, {}, geometry=truth["facts"], pool=pool.key,
                                drawing=_drawing(truth["regions"], points, labels, hard_set(truth["hardness"], q)))
        for name in todo[seed]:
            if name == NETWORK or scores[name].status != "ok":
                continue
            result = scores[name]
            extra = {"geometry": truth["facts"], "pool": pool.key, "cost": result.cost}
            if seed == 0:
                extra["hard_set"] = [int(i) for i in hard_set(result.scores, q)]
            metrics = agreement_metrics(result.scores, truth["hardness"], q)
            if bayes is not None:
                metrics.update({f"bayes_{k}": v for k, v in agreement_metrics(result.scores, bayes, q).items()})
            engine.write_record(NAME, config, name, seed, metrics, **extra)


# ---- report -------------------------------------------------------------------------
#: what the verdict ranks by (docs/protocol.md, "Statistics": why 0.02)
METRIC = Metric("Spearman", higher_is_better=True, delta=0.02)


def verdict_rows(records: list[dict]) -> dict[str, list]:
    """The rows the verdict ranks: (method, (pool, q), seed, Spearman with the Bayes boundary, or
    with the reference network where a record has no Bayes boundary)."""
    key = "bayes_spearman" if all("bayes_spearman" in r["metrics"] for r in records) else "spearman"
    return {"geometry": [(r["method"], (r["config"]["pool"], r["config"]["q"]), r["seed"], r["metrics"][key])
                         for r in records if not _only_ambiguity([r["method"]])]}


def report(records: list[dict]) -> Report:
    sections, ranks, plots = [], {}, {}
    drawings = {(r["config"]["pool"], r["config"]["q"], r["config"]["margin"]): r["drawing"]
                for r in records if r["method"] == NETWORK}
    records = [r for r in records if r["method"] != NETWORK]
    for (pool, q, margin), cell in sorted(group(records, "config.pool", "config.q", "config.margin").items()):
        by_method = group(cell, "method")
        spearman = {m: mean_ci([r["metrics"]["spearman"] for r in rs])[0] for (m,), rs in by_method.items()}
        cell_ranks = ranks_by(spearman)
        ranks.update(cell_ranks)
        order = sorted(spearman, key=lambda m: -spearman[m])
        rows = []
        for method in order:
            rs = by_method[(method,)]
            metric = lambda name: [r["metrics"][name] for r in rs]  # noqa: E731
            bayes = [format_ci(metric(f"bayes_{k}")) if "bayes_spearman" in rs[0]["metrics"] else "–"
                     for k in ("spearman", "auprc")]
            rows.append([method, format_ci(metric("spearman")), format_ci(metric("auprc")), *bayes,
                         f"{cell_ranks[method]:.1f}", len(rs)])
        baseline = np.mean([r["metrics"]["baseline"] for r in cell])
        tag = f"{pool}_q{q}_margin{margin}"
        drawing = drawings.get((pool, q, margin))
        if drawing is None and _only_ambiguity(order):  # the leaderboard's second call: geometry shown above
            sections.append(f"### pool {pool}, hardest {q:.0%} of the ground truth, box margin {margin}\n\n"
                            "Ground truth, metrics and geometry as above.\n\n"
                            + tabulate(rows, headers=_heads(q), tablefmt="github"))
            continue
        sections.append(
            f"### pool {pool}, hardest {q:.0%} of the ground truth, box margin {margin}\n\n"
            "Two ground truths, neither of them the network the methods read. *Reference network*: the exact decision "
            "boundary of a separately trained network (same recipe and data, seed 1000 + s), extracted from its linear "
            "regions; *Bayes*: the Bayes-optimal boundary of the generating distribution, where it is known. A sample's "
            "hardness is −(its distance to the boundary), signed + where the boundary's side is its label. Each "
            "method's scores (higher = harder) of seed s are compared with the reference network of seed s. Means "
            "± 95% CI over estimation seeds (one seed: no interval); methods ranked by mean Spearman with the reference "
            f"network. AUPRC: the ground truth's hardest {q:.0%} are the positives (random baseline {baseline:.3f}).\n\n"
            + tabulate(rows, headers=_heads(q), tablefmt="github")
            + "\n\n" + _facts_table(cell))
        plots[f"geometry_regions_per_layer_{tag}.png"] = _layers_plot(cell)
        if drawing is None:
            sections[-1] += ("\n\nNo current `_network` record carries seed 0's drawing: rerun seed 0 for the region "
                             "and hard-set plots.")
            continue
        hard_sets = {m: next((r["hard_set"] for r in by_method[(m,)] if r["seed"] == 0 and "hard_set" in r), None)
                     for m in order}
        plots.update(_drawing_plots(drawing, {m: h for m, h in hard_sets.items() if h is not None}, q, tag))
    bayes = all("bayes_spearman" in r["metrics"] for r in records)
    text, summary = verdict_section("geometry", verdict_rows(records)["geometry"], METRIC,
                                    what=f"Spearman with {'the Bayes boundary' if bayes else 'the reference network'}. ")
    return Report("\n\n".join([*sections, text]), ranks, plots, {"geometry": summary} if summary else {})


def _heads(q: float) -> list[str]:
    return ["method", "Spearman (reference network)", f"AUPRC@{q:.0%} (reference network)", "Spearman (Bayes)",
            f"AUPRC@{q:.0%} (Bayes)", "rank", "seeds"]


def _only_ambiguity(methods) -> bool:
    """True when every method is an ambiguity measure (``bench.leaderboard`` reports those apart)."""
    from .. import registry

    known = registry.list_methods()
    return bool(methods) and all(m in known and registry.get_method(m).family == "ambiguity" for m in methods)


def _seed_facts(cell: list[dict]) -> dict[int, dict]:
    facts = {}
    for record in sorted(cell, key=lambda r: (r["seed"], r["method"])):
        facts.setdefault(record["seed"], record.get("geometry"))
    return {seed: f for seed, f in facts.items() if f}


def _facts_table(cell: list[dict]) -> str:
    facts = _seed_facts(cell)
    rows = [[seed, f["regions"], " → ".join(map(str, f["regions_per_layer"])), f["boundary_segments"],
             f"{f['boundary_length']:.3f}", f"{100 * f['misclassified']:.1f}", f"{100 * f['certified']:.1f}",
             f"{f['extraction_seconds']:.2f}"] for seed, f in sorted(facts.items())]
    box = next(iter(facts.values()))["box"] if facts else None
    where = (f" Box (normalised inputs): x ∈ [{box[0]:.2f}, {box[1]:.2f}], y ∈ [{box[2]:.2f}, {box[3]:.2f}]."
             if box else "")
    return ("Geometry of each seed's network: linear regions in the box (after each hidden layer), decision-boundary "
            "segments and length, the share of pool samples it misclassifies, the share whose distance is certified "
            "global (at most the distance to the box border), and the extraction time (regions + boundary, CPU)."
            + where + "\n\n"
            + tabulate(rows, headers=["seed", "regions", "regions per layer", "boundary segments", "boundary length",
                                      "misclassified %", "certified %", "extraction s"], tablefmt="github"))


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _layers_plot(cell: list[dict]):
    plt = _pyplot()
    facts = _seed_facts(cell)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    seeds = sorted(facts)
    width = 0.8 / max(1, len(seeds))
    for k, seed in enumerate(seeds):
        counts = facts[seed]["regions_per_layer"]
        bars = ax.bar(np.arange(1, len(counts) + 1) + (k - (len(seeds) - 1) / 2) * width, counts, width,
                      label=f"seed {seed}")
        ax.bar_label(bars, fontsize=6)
    depth = max((len(f["regions_per_layer"]) for f in facts.values()), default=0)
    ax.set_xticks(range(1, depth + 1), [f"layer {i}" for i in range(1, depth + 1)])
    ax.set_ylabel("linear regions in the box")
    ax.set_title("regions after each hidden layer", fontsize=10)
    ax.legend(fontsize=7)
    return fig


_CACHE: dict = {}


def _extracted(drawing: dict):
    """Regions and boundary of the drawing's network (cached for the report's two calls)."""
    key = (drawing["layers"][0][0]["b64"], drawing["layers"][-1][1]["b64"], tuple(drawing["box"]))
    if key not in _CACHE:
        _CACHE.clear()
        model = network_from_layers([(unpack(w), unpack(b)) for w, b in drawing["layers"]])
        regions = relu_geometry.linear_regions(model, drawing["box"])
        _CACHE[key] = (regions, relu_geometry.decision_boundary(regions))
    return _CACHE[key]


def _drawing_plots(drawing: dict, hard_sets: dict[str, list], q: float, tag: str) -> dict:
    from matplotlib.collections import LineCollection

    plt = _pyplot()
    regions, boundary = _extracted(drawing)
    points, labels = unpack(drawing["x"]).astype(np.float64), np.asarray(drawing["y"], dtype=np.int64)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    relu_geometry.plot_regions(regions, boundary, points, labels, ax=ax)
    view = drawing.get("view", drawing["box"])
    ax.set_xlim(view[0], view[1])
    ax.set_ylim(view[2], view[3])
    ax.set_title(f"seed 0: {len(regions)} linear regions in the box, decision boundary\n"
                 f"({len(boundary.segments)} segments, length {boundary.length:.3g}); the pool's samples", fontsize=9)
    out = {f"geometry_regions_{tag}.png": fig}

    # the hard sets: predicted class on a grid behind the exact boundary, each method's hardest q circled
    xmin, xmax, ymin, ymax = view
    gx, gy = np.meshgrid(np.linspace(xmin, xmax, 300), np.linspace(ymin, ymax, 300))
    predicted = regions.predict(np.stack([gx.ravel(), gy.ravel()], axis=1)).reshape(gx.shape)
    classes = max(regions.num_classes, int(labels.max(initial=0)) + 1)
    cmap = plt.get_cmap("tab10" if classes <= 10 else "tab20")
    colours = np.array([cmap(i % cmap.N) for i in range(classes)])
    panels = {"ground truth (exact)": drawing["truth_hard_set"], **hard_sets}
    cols = min(5, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    for ax, (name, chosen) in zip(axes.flat, panels.items()):
        ax.imshow(colours[predicted], origin="lower", extent=(xmin, xmax, ymin, ymax), alpha=0.25,
                  interpolation="nearest", aspect="equal")
        ax.add_collection(LineCollection(boundary.segments, colors="black", linewidths=0.8))
        ax.scatter(points[:, 0], points[:, 1], c=colours[labels], s=2, linewidths=0)
        hard = points[np.asarray(chosen, dtype=np.int64)]
        ax.scatter(hard[:, 0], hard[:, 1], s=14, facecolors="none", edgecolors="red", linewidths=0.6)
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=8)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"seed 0: each method's hardest {q:.0%} (red circles); black = exact decision boundary", fontsize=10)
    fig.tight_layout()
    out[f"geometry_hard_sets_{tag}.png"] = fig
    return out
