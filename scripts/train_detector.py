"""Train the ``detector`` method's weights (methods/detector_weights.npz), seeded and reproducible.

Where they come from: the suite's own estimation runs on planted label noise. For each seed s in
``--seeds``, the train split of ``--dataset`` (default: moons) gets ``--rate`` (default 20%)
label-uniform noise planted with seed s (``bench.estimation.Estimator.pool``, the detection track's
planter), and the dataset's default recipe is trained on it with seed s, recording the per-epoch
dynamics (``Estimator.run``, exactly what ``bench run`` scores). Each sample's p_y trajectory is
resampled to 20 points (``methods.hcat.resample_trajectories``) and labelled with the planted mask.
A GRU detector (``methods.hcat.TrajectoryDetector``) is fit with binary cross-entropy on every seed
but the last, which is held out to report the detector's AUROC/AUPRC beside the plain mean-p_y
baseline; the weights, that report and the training dataset's row hashes (by which the method
refuses that dataset) are written to ``--out``.

    python scripts/train_detector.py                      # rewrites methods/detector_weights.npz
    python scripts/train_detector.py --dataset spirals --out /tmp/d.npz --eval-on digits

Runs on the CPU in about a minute (one thread). ``--results`` keeps the estimation runs for a rerun.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.data import load_dataset  # noqa: E402
from bench.estimation import Estimator  # noqa: E402
from bench.recipes import recipe_for  # noqa: E402
from bench.store import Store  # noqa: E402
from methods.hcat import (DETECTOR_FILE, DETECTOR_HIDDEN, DETECTOR_POINTS, TrajectoryDetector,  # noqa: E402
                          resample_trajectories, row_hashes)


def trajectories(dataset_name: str, seeds, rate: float, results: Path, data_root: str, subset: int | None):
    """(per seed) resampled p_y trajectories (N, 20) and planted masks (N,), from the suite's runs."""
    data = load_dataset(dataset_name, data_root=data_root, subset=subset)
    estimator = Estimator(data, recipe_for(dataset_name), torch.device("cpu"), Store(results))
    out = []
    for seed in seeds:
        pool = estimator.pool("train", ("label-uniform", rate), seed)
        p_y = estimator.run(pool, seed).part("dynamics").p_y
        out.append((resample_trajectories(p_y), np.asarray(pool.planted, dtype=bool)))
    return data, out


def fit(x: np.ndarray, y: np.ndarray, seed: int, epochs: int, lr: float = 0.01, batch: int = 256) -> TrajectoryDetector:
    """Minibatch Adam on binary cross-entropy, seeded (initialisation and order)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = TrajectoryDetector(DETECTOR_HIDDEN)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    x_t, y_t = torch.as_tensor(x), torch.as_tensor(y, dtype=torch.float32)
    steps = epochs * ((len(x) + batch - 1) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x_t[idx]), y_t[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def metrics(scores: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    return float(roc_auc_score(mask, scores)), float(average_precision_score(mask, scores))


def report(name: str, runs, model: TrajectoryDetector) -> dict:
    """AUROC/AUPRC of the detector and of 1 - mean p_y on each run, averaged."""
    rows = []
    with torch.no_grad():
        for x, mask in runs:
            rows.append([*metrics(model(torch.as_tensor(x)).numpy(), mask), *metrics(1 - x.mean(axis=1), mask)])
    auroc, auprc, base_auroc, base_auprc = np.mean(rows, axis=0)
    print(f"{name}: detector AUROC {auroc:.3f} AUPRC {auprc:.3f} | 1 - mean p_y AUROC {base_auroc:.3f} "
          f"AUPRC {base_auprc:.3f} | positives {np.mean([m.mean() for _, m in runs]):.3f}")
    return {"auroc": auroc, "auprc": auprc, "base_auroc": base_auroc, "base_auprc": base_auprc}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="moons")
    parser.add_argument("--seeds", type=int, default=8, help="planting/training seeds 0..S-1; the last is held out")
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the detector's own training")
    parser.add_argument("--out", type=Path, default=DETECTOR_FILE)
    parser.add_argument("--results", type=Path, default=None, help="keep the estimation runs here (default: temp)")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--subset", type=int, default=None)
    parser.add_argument("--eval-on", default="", help="comma-separated datasets to report transfer on (20%% noise, "
                                                        "2 seeds each; not saved)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        results = args.results or Path(scratch)
        data, runs = trajectories(args.dataset, range(args.seeds), args.rate, results, args.data_root, args.subset)
        train_runs, held_out = runs[:-1], runs[-1:]
        x = np.concatenate([r[0] for r in train_runs])
        y = np.concatenate([r[1] for r in train_runs])
        model = fit(x, y, seed=0, epochs=args.epochs)
        held = report(f"{data.key} held-out seed {args.seeds - 1}", held_out, model)
        for name in filter(None, args.eval_on.split(",")):
            _, other = trajectories(name, range(2), args.rate, results, args.data_root,
                                    2000 if name in ("mnist", "fashion-mnist") else None)
            report(f"transfer to {name}", other, model)
    rows = np.unique(row_hashes(torch.cat([data.x_train, data.x_test])))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out, hidden=np.int64(DETECTOR_HIDDEN), points=np.int64(DETECTOR_POINTS),
        dataset=np.str_(data.key), input_shape=np.asarray(data.input_shape, dtype=np.int64), rows=rows,
        noise=np.str_(f"label-uniform {args.rate:g}"), seeds=np.arange(args.seeds), recipe=np.str_(
            str(recipe_for(args.dataset).to_dict())), held_out_auroc=np.float64(held["auroc"]),
        held_out_auprc=np.float64(held["auprc"]), torch_version=np.str_(torch.__version__),
        **{f"w.{k}": v.detach().numpy() for k, v in model.state_dict().items()})
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.1f} KiB) in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
