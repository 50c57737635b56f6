"""The identifiers of the prior benchmark (H-CAT: Seedat, Imrie & van der Schaar 2024) that no other
family here covers: ALLSH's local sensitivity to augmentation, Monte-Carlo-dropout confidence
agreement, and a learned detector of noisy labels from training trajectories.

H-CAT's code (github.com/seedatnabeel/H-CAT, ``src/hardness.py``: ``AllSH_Class``,
``Conf_Agree_Class``, ``Detector_Class``; ``src/detector.py``) was read for each; every docstring
states what is kept from it and what differs. All three are batched over samples (chunks of rows);
their random draws come from a CPU generator seeded from the estimation run's seed, so a score is
reproducible and does not depend on the device.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench import register
from bench.train import augment

from ._common import chunks

H_CAT = ("Seedat, Imrie & van der Schaar 2024, Dissecting Sample Hardness: A Fine-Grained Analysis of Hardness "
         "Characterization Methods for Data-Centric AI (ICLR), the H-CAT benchmark")

#: rows scored at once: bounds the (copies or passes) x rows x width intermediate tensors
CHUNK = 2048
ALLSH_STREAM, DROPOUT_STREAM = 0xA115, 0xD209  # tags that keep the methods' random streams apart


def method_generator(seed: int, stream: int) -> torch.Generator:
    """A CPU generator for one method on one estimation run, independent of every other stream."""
    state = np.random.SeedSequence([int(stream), int(seed)]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state >> 1))


# ---- ALLSH: local sensitivity to augmentation -------------------------------------------------
ALLSH_COPIES = 4
#: the Gaussian perturbation's standard deviation, in units of the pool's input standard deviation
ALLSH_NOISE = 0.3


def kl_rows(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(softmax(z_p) || softmax(z_q)) per row, computed in log space (never 0 * log 0 or p / 0)."""
    log_p, log_q = F.log_softmax(logits_p.float(), dim=-1), F.log_softmax(logits_q.float(), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def allsh_perturbation(x: torch.Tensor, recipe_augment: str, noise_std: float):
    """The augmentation ALLSH compares a sample with: the recipe's own augmentation for image pools
    whose recipe augments (``bench.train.augment``), else additive Gaussian noise of std ``noise_std``.
    Returns ``perturb(batch, generator)``, and the words naming it."""
    if x.ndim == 4 and recipe_augment != "none":
        return (lambda batch, g: augment(batch, recipe_augment, g)), f"the recipe's {recipe_augment} augmentation"

    def gaussian(batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return batch + noise_std * torch.randn(batch.shape, generator=g).to(batch.device, batch.dtype)

    return gaussian, f"Gaussian input noise (std {noise_std:.3g})"


@torch.no_grad()
def allsh_scores(model, x: torch.Tensor, perturb, copies: int, generator: torch.Generator,
                 chunk: int = CHUNK) -> torch.Tensor:
    """(1/K) sum_k KL(p(.|x) || p(.|a_k(x))) per row, K = ``copies`` perturbations ``perturb(batch,
    generator)`` of each row, the model in eval mode. Copies are drawn chunk by chunk, copy by copy,
    so the result depends on the chunk size only through the order of the draws."""
    was_training = model.training
    model.eval()
    out = torch.empty(len(x), device=x.device)
    for start, stop in chunks(len(x), chunk):
        batch = x[start:stop]
        clean = model(batch)
        out[start:stop] = torch.stack([kl_rows(clean, model(perturb(batch, generator)))
                                       for _ in range(copies)]).mean(dim=0)
    model.train(was_training)
    return out


@register(label_blind=True, higher_is_harder=True, needs={"final_model"}, family="final model",
          citation="Zhang et al. 2022, ALLSH: Active Learning Guided by Local Sensitivity "
                   "and Hardness (Findings of NAACL); as implemented in " + H_CAT)
def allsh(ctx):
    """ALLSH local sensitivity (Zhang et al. 2022, as H-CAT scores it): (1/K) sum_k KL(p(.|x) || p(.|a_k(x))),
    p the softmax of the trained network (eval mode, ctx.final_model) and a_1..a_K, K = 4, seeded random
    augmentations of x; higher = the prediction moves more under augmentation = harder.

    Augmentations: image pools whose recipe augments use the recipe's own training augmentation
    (``bench.train.augment``: ``flip-translate`` on the airbench CIFAR recipes, ``flip-crop``, ``crop``);
    every other pool (vectors, and images whose recipe does not augment, e.g. the LeNet MNIST recipes)
    gets additive Gaussian noise N(0, (0.3 s)^2) per input value, s the pool's overall input standard
    deviation (label-free). 0.3 s follows H-CAT's AugLy chain, whose RandomNoise adds std 0.1 on [0, 1]
    pixels, about 0.3 of a natural image's pixel std (MNIST 0.31, CIFAR-10 0.25); flips and crops are
    not label-preserving on vectors, and the recipe's choice of no augmentation is respected for images.
    Draws come from a CPU generator seeded from the run's seed.

    Variant: H-CAT's (``AllSH_Class``): KL(original || augmented) of the final model, one score per
    sample, higher = harder. Deviations: (1) the recipe's augmentation or Gaussian noise instead of
    H-CAT's AugLy chain (HFlip, RandomBrightness, RandomNoise, RandomPixelization), which needs PIL
    images and the augly package; (2) K = 4 copies averaged instead of one, so the score is less a draw
    of chance; (3) KL in log space (H-CAT's p * log(p / q) gives NaN where q underflows). The paper
    (active learning for text) uses back-translation and other semantic-preserving augmentations and
    picks samples by this local sensitivity; it never reads the label (label-blind)."""
    x = ctx.x
    noise_std = ALLSH_NOISE * float(x.float().std())
    perturb, _ = allsh_perturbation(x, ctx.recipe.augment, noise_std)
    return allsh_scores(ctx.final_model, x, perturb, ALLSH_COPIES, method_generator(ctx.seed, ALLSH_STREAM))


# ---- Confidence agreement: Monte-Carlo dropout ------------------------------------------------
DROPOUT_RATE = 0.2
DROPOUT_PASSES = 10


@torch.no_grad()
def mc_dropout_confidence(model, x: torch.Tensor, rate: float, passes: int, generator: torch.Generator,
                          chunk: int = CHUNK) -> torch.Tensor:
    """max_c (1/T) sum_t softmax(W (m_t * h(x) / (1 - rate)) + b)_c per row: h = ``model.embed`` the
    penultimate features (eval mode), (W, b) = ``model.head``, m_t ~ Bernoulli(1 - rate) elementwise,
    T = ``passes`` masks per row (inverted dropout, so the expected pre-activation is unchanged)."""
    was_training = model.training
    model.eval()
    out = torch.empty(len(x), device=x.device)
    for start, stop in chunks(len(x), chunk):
        h = model.embed(x[start:stop]).float()
        keep = (torch.rand((passes, *h.shape), generator=generator) >= rate).to(h.device, h.dtype)
        logits = model.head(h[None] * keep / (1.0 - rate))  # (T, B, C)
        out[start:stop] = torch.softmax(logits.float(), dim=-1).mean(dim=0).max(dim=-1).values
    model.train(was_training)
    return out


@register(label_blind=True, higher_is_harder=False, needs={"final_model"}, family="final model",
          citation="Gal & Ghahramani 2016, Dropout as a Bayesian Approximation (ICML), Monte-Carlo dropout; "
                   "conf_agree as in " + H_CAT + " (its code cites arXiv:1910.13427)")
def conf_agree(ctx):
    """Confidence agreement of Monte-Carlo dropout passes (H-CAT's conf_agree; Gal & Ghahramani 2016):
    max_c (1/T) sum_t softmax(f_t(x))_c, f_t the trained network (ctx.final_model, eval mode) with
    dropout at rate 0.2 applied to its penultimate features (inverted: kept units scaled by 1/0.8)
    before the linear head, T = 10 seeded passes; lower = the passes agree less on a confident class =
    harder.

    Variant: H-CAT's ``Conf_Agree_Class``: the maximum of the mean softmax over 10 stochastic passes,
    ranked low = hard (its evaluator flags the scores at or below the percentile). Deviations: the
    suite's networks have no dropout layers (H-CAT's have two, p = 0.2, active in training), so
    dropout is applied at inference only, to the penultimate features, where MC dropout's last-layer
    form acts on the representation every model here exposes (``embed``/``head``); rate 0.2 is
    H-CAT's, and a mild rate keeps the mean prediction near the deterministic one of a network never
    trained with dropout (at 0.5 a network without dropout training loses much of its accuracy, and
    the score then mostly measures the feature norm). H-CAT calls ``net.train()``, which also puts
    batch norm into batch-statistics mode (and updates its running statistics); here batch norm stays
    in eval mode, so a sample's score does not depend on the rest of its batch. The masks come from a
    CPU generator seeded from the run's seed. Label-free: it never reads y."""
    return mc_dropout_confidence(ctx.final_model, ctx.x, DROPOUT_RATE, DROPOUT_PASSES,
                                 method_generator(ctx.seed, DROPOUT_STREAM))


# ---- Detector: a learned classifier of training trajectories ---------------------------------
DETECTOR_POINTS = 20
DETECTOR_HIDDEN = 16
DETECTOR_FILE = Path(__file__).with_name("detector_weights.npz")


def resample_trajectories(values: np.ndarray, points: int = DETECTOR_POINTS) -> np.ndarray:
    """(N, E) per-epoch values linearly interpolated at ``points`` evenly spaced positions of training
    (epoch 1 to epoch E), (N, points) float32: any epoch count maps to the same length. E = 1 repeats
    the one value."""
    values = np.asarray(values, dtype=np.float64)
    epochs = values.shape[1]
    if epochs == 1:
        return np.repeat(values, points, axis=1).astype(np.float32)
    position = np.linspace(0.0, epochs - 1, points)
    low = np.minimum(np.floor(position).astype(int), epochs - 2)
    frac = position - low
    return (values[:, low] * (1 - frac) + values[:, low + 1] * frac).astype(np.float32)


class TrajectoryDetector(torch.nn.Module):
    """A one-layer GRU (hidden size 16) over a resampled p_y trajectory (N, T) and a linear read-out
    of its last state: the log-odds that the sample's label is noisy."""

    def __init__(self, hidden: int = DETECTOR_HIDDEN):
        super().__init__()
        self.gru = torch.nn.GRU(1, hidden, batch_first=True)
        self.out = torch.nn.Linear(hidden, 1)

    def forward(self, trajectories: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(trajectories[:, :, None])
        return self.out(states[:, -1]).squeeze(-1)


def row_hashes(x) -> np.ndarray:
    """A 32-bit hash of each row of x (rounded to 1/1024), vectorised: a fixed random integer
    combination of the row's values modulo 2^64 (numpy's unsigned arithmetic wraps), upper 32 bits."""
    flat = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64).reshape(len(x), -1)
    weights = np.random.default_rng(0x4A5).integers(1, 2 ** 63, size=flat.shape[1], dtype=np.uint64) | np.uint64(1)
    hashed = np.zeros(len(flat), dtype=np.uint64)
    for start, stop in chunks(len(flat), max(1, (1 << 22) // max(1, flat.shape[1]))):
        q = np.rint(flat[start:stop] * 1024).astype(np.int64).astype(np.uint64)
        hashed[start:stop] = (q * weights).sum(axis=1, dtype=np.uint64)
    return (hashed >> np.uint64(32)).astype(np.uint32)


@lru_cache(maxsize=1)
def load_detector(path: str = str(DETECTOR_FILE)) -> tuple[TrajectoryDetector, dict]:
    """The packaged detector (``scripts/train_detector.py`` writes it) and its metadata: the
    training dataset's key (``dataset``), input shape (``input_shape``) and row hashes (``rows``)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    detector = TrajectoryDetector(int(arrays["hidden"]))
    detector.load_state_dict({k[len("w."):]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith("w.")})
    meta = {k: v for k, v in arrays.items() if not k.startswith("w.")}
    return detector.eval(), meta


class TrainedOnThisDataset(ValueError):
    """The detector was trained on this dataset: its scores there would not measure transfer."""


#: a pool is refused when at least this share of its input rows are rows of the training dataset
OVERLAP_REFUSED = 0.5


def refuse_training_data(ctx, meta: dict) -> None:
    """Raise ``TrainedOnThisDataset`` when ctx's pool comes from the detector's training dataset:
    by the dataset's key where the context knows it (``ctx.dataset_key``: the key itself or a
    ``-n<subset>`` of it), and by content always (a share of the pool's input rows at least
    ``OVERLAP_REFUSED`` equal to rows of that dataset, train and test split)."""
    trained_on = str(meta["dataset"])
    key = getattr(ctx, "dataset_key", None)
    if key is not None and (key == trained_on or str(key).startswith(f"{trained_on}-n")):
        raise TrainedOnThisDataset(f"detector was trained on {trained_on!r} (planted-noise trajectories); it is not "
                                   f"scored on {key!r}, whose boards would not measure transfer")
    if tuple(ctx.x.shape[1:]) == tuple(int(d) for d in meta["input_shape"]):
        overlap = float(np.isin(row_hashes(ctx.x), meta["rows"]).mean())
        if overlap >= OVERLAP_REFUSED:
            raise TrainedOnThisDataset(f"detector was trained on {trained_on!r} (planted-noise trajectories), and "
                                       f"{overlap:.0%} of this pool's inputs are rows of that dataset; it is not "
                                       "scored on the data it was trained on")


@torch.no_grad()
def detector_scores(detector: TrajectoryDetector, p_y: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """The detector's log-odds of a noisy label from (N, E) per-epoch p_y, in chunks of rows."""
    trajectories = torch.as_tensor(resample_trajectories(p_y))
    return torch.cat([detector(trajectories[a:b]) for a, b in chunks(len(trajectories), chunk)]).numpy()


@register(higher_is_harder=True, needs={"dynamics"}, family="training dynamics",
          citation="Jia et al. 2023, Learning from Training Dynamics: Identifying Mislabeled "
                   "Data Beyond Manually Designed Features (AAAI); as used in " + H_CAT)
def detector(ctx):
    """Learned noisy-label detector (Jia et al. 2023, as H-CAT uses it): g(resample_20(p_y(x; theta_1..E))),
    the log-odds of "the label is noisy" from a small recurrent network g over the sample's p_y trajectory
    (ctx.dynamics.p_y: the probability of the observed label in the training forward pass, one per
    epoch), linearly interpolated to 20 evenly spaced points of training so that any epoch count works;
    higher = harder (likely mislabelled).

    g: a one-layer GRU (hidden size 16, 929 parameters) and a linear read-out, packaged as
    methods/detector_weights.npz. TRAINED ON moons (the suite's 2-D two-moons dataset, its default
    recipe: MLP 32-32-32, 100 epochs) with 20% label-uniform planted noise, the estimation runs of
    seeds 0-7 (planting and training seeded alike), binary cross-entropy against the planted mask;
    ``scripts/train_detector.py`` reproduces the weights. Its boards therefore measure transfer from
    moons, and it refuses (fails with a clear error) a pool of moons itself: by the dataset's key
    where the context names it, and always when half or more of the pool's input rows are rows of
    moons.

    Variant: Jia et al.'s detector as H-CAT ships it (``src/detector.py``): an LSTM (hidden 64, 2
    layers) over the per-epoch probability of the observed label, trained on CIFAR-10 with 20%
    planted noise. Deviations: (1) a GRU of hidden size 16 (kilobytes of weights) trained on moons, a
    dataset none of the detection boards uses, so that no detection board scores it in distribution;
    (2) trajectories resampled to 20 points (H-CAT keeps one detector per epoch count: 10, 20, 50, 100,
    200); (3) p_y from the training forward pass (H-CAT reads a clean pass after each epoch, our
    ``eval_dynamics``), which costs no extra pass; (4) the continuous log-odds is the score (H-CAT
    thresholds the probability at 0.5 into a 0/1 flag, which cannot rank)."""
    model, meta = load_detector()
    refuse_training_data(ctx, meta)
    return detector_scores(model, ctx.dynamics.p_y)
