"""Gradient-based identifiers, all per-sample and vectorised with ``torch.func``.

Models are used in eval mode (``ctx.model_at`` returns them so), which makes every
sample's computation independent of the others in its chunk, also for BatchNorm.
Chunks bound memory; there is no per-sample Python loop.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp, vmap

from bench import register

from ._common import BACKWARD_COPIES, NO_GRAD_COPIES, chunks, sample_chunk

#: per-sample gradient values materialised at once (float32, 32 MiB): measured on CPU, chunks
#: that stay near cache size run 2-3x faster than larger ones (digits MLP: ~100 samples a chunk)
GRADIENT_BUDGET = 1 << 23


def _detached_state(module: torch.nn.Module):
    params = {k: v.detach() for k, v in module.named_parameters()}
    buffers = {k: v.detach() for k, v in module.named_buffers()}
    return params, buffers


def closed_form_grad_norms(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                           layers=(torch.nn.Linear, torch.nn.Conv2d, torch.nn.BatchNorm2d)) -> torch.Tensor | None:
    """Exact per-sample gradient norms when every parameter sits in one of ``layers``, each
    applied once: for a linear layer z = W a + b on (B, D) inputs, grad_W = delta a^T, so
    ||grad_W||^2 = ||delta||^2 ||a||^2 and ||grad_b||^2 = ||delta||^2 (Goodfellow 2015); for a
    convolution (groups 1), grad_W = delta U^T with U the unfolded input patches (C k k, L) and
    delta the output gradient (O, L) over the L output positions, formed per sample by one
    batched matrix product, or, where L (O + C k k) < O C k k, its squared norm from the two
    L x L Gram matrices, <delta^T delta, U^T U>; grad_b = delta summed over positions; for a batch norm in eval
    mode, z = gamma a_hat + beta with a_hat = (a - running mean) / sqrt(running var + eps) fixed
    per channel, so grad_gamma = sum over positions of delta a_hat and grad_beta = sum of delta.
    One batched backward of the summed loss gives every sample's delta, because in eval mode
    samples do not interact. Returns None for any other architecture (grouped convolutions, a
    batch norm in training mode or without running statistics, ...)."""
    modules = [m for m in model.modules() if isinstance(m, layers)]
    if any(isinstance(m, torch.nn.Conv2d) and (m.groups != 1 or m.padding_mode != "zeros") for m in modules):
        return None
    if any(isinstance(m, torch.nn.BatchNorm2d) and (m.training or m.running_mean is None) for m in modules):
        return None
    if sum(p.numel() for m in modules for p in m.parameters()) != sum(p.numel() for p in model.parameters()):
        return None
    calls = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: calls.append((mod, inp[0], out))) for m in modules]
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(model(x), y, reduction="sum")
            if len(calls) != len(modules) or any(isinstance(m, torch.nn.Linear) and a.ndim != 2 for m, a, _ in calls):
                return None
            deltas = torch.autograd.grad(loss, [out for _, _, out in calls])
    finally:
        for hook in hooks:
            hook.remove()
    sq = torch.zeros(len(y), dtype=x.dtype, device=x.device)
    for (module, a, _), delta in zip(calls, deltas):
        a = a.detach()
        if isinstance(module, torch.nn.BatchNorm2d):
            if module.affine:
                a_hat = (a - module.running_mean[:, None, None]) * torch.rsqrt(module.running_var[:, None, None]
                                                                              + module.eps)
                sq += (delta * a_hat).sum((2, 3)).pow(2).sum(1) + delta.sum((2, 3)).pow(2).sum(1)
        elif isinstance(module, torch.nn.Conv2d):
            patches = F.unfold(a.contiguous(), module.kernel_size, module.dilation, module.padding, module.stride)  # (B, Ckk, L)
            delta = delta.flatten(2)  # (B, O, L)
            (_, o, positions), ckk = delta.shape, patches.shape[1]
            if positions * (o + ckk) < o * ckk:
                # few positions (deep layers): ||delta U^T||_F^2 = <delta^T delta, U^T U>, two L x L Gram
                # matrices instead of the O x Ckk gradient (the "ghost norm" of Li et al. 2022, ICLR)
                sq += (torch.bmm(delta.transpose(1, 2), delta) * torch.bmm(patches.transpose(1, 2), patches)).sum((1, 2))
            else:
                sq += torch.bmm(delta, patches.transpose(1, 2)).pow(2).sum((1, 2))
            if module.bias is not None:
                sq += delta.sum(2).pow(2).sum(1)
        else:
            delta_sq = delta.pow(2).sum(1)
            sq += delta_sq * a.pow(2).sum(1) + (delta_sq if module.bias is not None else 0)
    return sq.sqrt()


def linear_grad_norms(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """``closed_form_grad_norms`` for models made of ``nn.Linear`` layers only (MLPs); None otherwise."""
    return closed_form_grad_norms(model, x, y, layers=(torch.nn.Linear,))


def _closed_form_chunk(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Samples per chunk of the closed form: its largest per-sample temporaries are the
    unfolded patches of each convolution (C k k x L values), held to GRADIENT_BUDGET; 8192 for MLPs."""
    per_sample = [0]
    hooks = [m.register_forward_hook(
        lambda mod, inp, out: per_sample.append(mod.weight[0].numel() * out[0, 0].numel()))
        for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return 8192 if max(per_sample) == 0 else max(1, min(8192, GRADIENT_BUDGET // sum(per_sample)))


def per_sample_grad_norms(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                          chunk_size: int | None = None, closed_form: bool = True) -> torch.Tensor:
    """|| grad_theta CE(f(x_i; theta), y_i) ||_2 over all parameters, for every sample i
    (the model in eval mode): by the closed form of ``closed_form_grad_norms`` for MLPs and
    plain CNNs (linear and convolution layers only), else by ``vmap(grad(...))`` over
    ``functional_call``."""
    model.eval()
    if closed_form and len(y):
        size = chunk_size or _closed_form_chunk(model, x)
        fast = [closed_form_grad_norms(model, x[a:b], y[a:b]) for a, b in chunks(len(y), size)]
        if all(f is not None for f in fast):
            return torch.cat(fast).detach()
    params, buffers = _detached_state(model)
    n_params = sum(p.numel() for p in params.values())
    chunk_size = chunk_size or max(1, GRADIENT_BUDGET // n_params)

    def sample_loss(p, xi, yi):
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    def squared_norm(p, xi, yi):
        return sum(g.pow(2).sum() for g in grad(sample_loss)(p, xi, yi).values())

    batched = vmap(squared_norm, in_dims=(None, 0, 0))
    with torch.no_grad():  # torch.func.grad ignores the outer no_grad; this only stops parameter graphs
        sq = torch.cat([batched(params, x[a:b], y[a:b]) for a, b in chunks(len(y), chunk_size)])
    return sq.sqrt()


DATA_DIET = "Paul, Ganguli & Dziugaite 2021, Deep Learning on a Data Diet (NeurIPS)"


def mean_grad_norms(models, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """GraNd averaged over models: (1/K) sum_k || grad_theta CE(f(x; theta_k), y) ||_2."""
    return torch.stack([per_sample_grad_norms(model, x, y) for model in models]).mean(dim=0)


@register(higher_is_harder=True, needs={"early_runs"}, family="gradients", citation=DATA_DIET)
def grand(ctx):
    """GraNd (Paul et al. 2021): (1/K) sum_k || grad_theta CE(f(x; theta_k), y) ||_2 over all parameters, theta_k
    the k-th of K = ctx.recipe.early_runs networks trained independently from fresh initialisations up
    to the early epoch t = ctx.early_epoch (10% of training), in eval mode (ctx.early_models); exact
    per-sample gradients (closed form for MLPs and plain CNNs, else vmap(grad)).

    Variant: the paper's early-training score averaged over independent initialisations (the paper
    also reads GraNd at initialisation, epoch 0; here the early epoch, as for EL2N). Deviation:
    K = recipe.early_runs (default 4) instead of the paper's 10, to bound training cost; eval mode, so
    BatchNorm uses running statistics and samples do not interact. ``grand_final`` is the
    final-model variant."""
    return mean_grad_norms(ctx.early_models, ctx.x, ctx.y)


@register(higher_is_harder=True, needs={"final_model"}, family="gradients", citation=DATA_DIET)
def grand_final(ctx):
    """Final-model GraNd (after Paul et al. 2021): || grad_theta CE(f(x; theta_T), y) ||_2 over all parameters of
    the trained network of this estimation run (eval mode, ctx.final_model).

    Variant: the paper scores early in training and averages over initialisations (``grand``); the
    fully trained model, one run, is how the prior benchmark (H-CAT) and much data-centric practice
    use GraNd, so both are registered."""
    return per_sample_grad_norms(ctx.final_model, ctx.x, ctx.y)


def true_logit_input_grads(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d z_{y_i}(x_i) / d x_i for every sample, z the pre-softmax logits: one reverse pass of
    sum_i z_{y_i}(x_i), exact because samples do not interact in eval mode."""
    def summed(xb):
        return model(xb).gather(1, y[:, None]).sum()

    with torch.no_grad():
        return grad(summed)(x)


def pixel_gradients(stack: torch.Tensor) -> torch.Tensor:
    """(K, N, P) per-pixel gradients from a (K, N, ...) stack of input gradients: images
    (K, N, C, H, W) are averaged over their C channels first, as Agarwal et al. do for RGB;
    any other input shape counts each input dimension as a pixel."""
    if stack.ndim == 5:
        stack = stack.mean(dim=2)
    return stack.flatten(2)


def vog_per_sample(stack: torch.Tensor) -> torch.Tensor:
    """Un-normalised VoG from a (K, N, ...) stack of input gradients: per pixel p the population
    standard deviation over the K checkpoints, sqrt((1/K) sum_t (S_t,p - mean_t S_t,p)^2),
    then the mean over pixels."""
    return pixel_gradients(stack.double()).std(dim=0, unbiased=False).mean(dim=1)


def vog_from_gradients(stack: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """VoG normalised within the class: (VoG - mu_c) / sigma_c from a (K, N, ...) gradient stack."""
    return normalise_within_class(vog_per_sample(stack), y, num_classes)


def vog_raw(models: list[torch.nn.Module], x: torch.Tensor, y: torch.Tensor,
            batch_size: int | None = None) -> torch.Tensor:
    """Un-normalised VoG of each sample over ``models`` (the checkpoints), in chunks of samples: by
    default as many as the activation budget allows one input-gradient pass (``sample_chunk``), each
    sample also holding its K input gradients, their stack and its float64 copy (4 K input sizes in
    float32 values). Only the (N,) scores outlive a chunk. Measured, airbench 32-64-64 on 5,000
    CIFAR-shaped samples, peak RSS growth: +1.41 GB at 1024 samples a pass, +0.12 GB budgeted (75
    samples a pass at K = 6)."""
    out = torch.empty(len(y), dtype=torch.float64, device=x.device)
    if len(y) and models:
        batch_size = batch_size or sample_chunk(models[0], x, BACKWARD_COPIES, extra=4 * len(models) * x[0].numel())
    for a, b in chunks(len(y), batch_size or 1):
        stack = torch.stack([true_logit_input_grads(m, x[a:b], y[a:b]) for m in models])  # (K, B, ...)
        out[a:b] = vog_per_sample(stack)
    return out


def normalise_within_class(values: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(v - mean_c) / std_c with the class c = y_i of each sample (population std; 1 where 0)."""
    values = values.double()
    count = torch.bincount(y, minlength=num_classes).double().clamp_min(1)
    mean = torch.zeros(num_classes, dtype=values.dtype, device=values.device).index_add_(0, y, values) / count
    sq = torch.zeros_like(mean).index_add_(0, y, (values - mean[y]) ** 2) / count
    std = sq.sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return ((values - mean[y]) / std[y]).float()


def vog_epochs(recipe) -> list[int]:
    """The evenly spaced checkpoint epochs {round(E (i + 1) / n) : i < n}, n = min(checkpoints, E):
    ``recipe.checkpoint_epochs()`` without the added early epoch."""
    n = max(1, min(recipe.checkpoints, recipe.epochs))
    return sorted({round(recipe.epochs * (i + 1) / n) for i in range(n)})


@register(higher_is_harder=True, needs={"checkpoints"}, family="gradients",
          citation="Agarwal, D'souza & Hooker 2022, Estimating Example Difficulty using Variance of Gradients (CVPR)")
def vog(ctx):
    """VoG (Agarwal, D'souza & Hooker 2022): with S_t = d z_y / d x the gradient of the label's pre-softmax
    logit w.r.t. the input at checkpoint t (averaged over colour channels for C-channel images),
    VoG = (1/P) sum_p sqrt((1/K) sum_t (S_t,p - mean_t S_t,p)^2) over the P pixels, then normalised
    within the (observed) class: (VoG - mu_c) / sigma_c.

    Checkpoints: the K evenly spaced epochs {round(E (i + 1) / n)}, n = min(recipe.checkpoints, E)
    (the last epoch included), spread over training as the paper's are; the early epoch that
    ``recipe.checkpoint_epochs()`` adds for other methods is not one of them and is left out.
    Variant: the paper's, over the whole of training (the authors' code calls it "complete"; the
    paper also reads early, middle and late stages separately). No deviation.

    Behaviour: the paper finds high VoG on memorised and corrupted samples. With a network that
    does not fit the planted labels (digits, default recipe: about 6% of relabelled samples are
    predicted as their label at the end), the label's logit has a small, stable input gradient
    there and VoG ranks them below chance (detection AUROC about 0.27, with or without the early
    checkpoint)."""
    epochs = vog_epochs(ctx.recipe)
    if len(epochs) < 2:
        raise ValueError(f"VoG needs at least two checkpoints; the recipe keeps {epochs}")
    models = [ctx.model_at(epoch) for epoch in epochs]
    return normalise_within_class(vog_raw(models, ctx.x, ctx.y), ctx.y, ctx.num_classes)


def _own_storage(t: torch.Tensor) -> torch.Tensor:
    """t, or a copy of it where it is a view of a larger storage."""
    return t if t.untyped_storage().nbytes() == t.numel() * t.element_size() else t.clone()


def input_hvp(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Per-sample input Hessian-vector products H_i v_i with H_i = d^2 CE(f(x_i), y_i) / dx_i^2,
    forward-over-reverse (jvp of grad) and vmapped over the leading axis of ``vectors``
    (shape (V, *x.shape)). The loss is summed over the batch, which is exact since samples
    do not interact in eval mode. x and the vectors are copied first when they are views of larger
    tensors (a chunk of the pool): forward-mode AD gives a view's tangent the size of its base, so
    every chunk would allocate two tensors the size of the whole pool (+1.2 GB a chunk at 50,000
    CIFAR images)."""
    x, vectors = _own_storage(x), _own_storage(vectors)

    def summed_loss(xb):
        return F.cross_entropy(model(xb), y, reduction="sum")

    gradient = grad(summed_loss)

    def hvp(v):
        return jvp(gradient, (x,), (v,))[1]

    with torch.no_grad():
        return vmap(hvp)(vectors)


def rademacher(shape, generator: torch.Generator, device) -> torch.Tensor:
    """Uniform +-1 entries in float32, drawn on the CPU from ``generator``: drawn as float32 directly
    (the same values, and the same use of the stream, as drawing int64 and converting, without the
    two int64 temporaries of twice the size each)."""
    return torch.randint(0, 2, shape, generator=generator, dtype=torch.float32).mul_(2).sub_(1).to(device)


#: samples whose Rademacher vectors are drawn at once (n x this x the input size): the draws, hence
#: the scores, do not depend on the chunks the products are computed in
HVP_DRAWS = 512


def hvp_copies(n_vectors: int) -> float:
    """Copies of a sample's activation values that ``input_hvp`` holds with ``n_vectors`` vectors: the
    reverse pass's and, per vector, its tangents' (measured as peak RSS, airbench on 32 x 32 images, 2
    vectors: 6.0 (widths 32-64-64) and 5.3 (64-256-256) times the activation values)."""
    return BACKWARD_COPIES * (1 + n_vectors)


def hutchinson_curvature(model, x, y, n_vectors: int, generator: torch.Generator, batch_size: int = HVP_DRAWS,
                         chunk: int | None = None) -> torch.Tensor:
    """Hutchinson estimate of Tr(H_i^2) = E_v || H_i v ||^2, v Rademacher, per sample.

    The vectors are drawn for ``batch_size`` samples at a time, and their products computed in
    chunks of ``chunk`` samples (default: as many as the activation budget allows, ``sample_chunk``
    with ``hvp_copies``), so memory follows the activation size, not a sample count (airbench
    32-64-64, 5,000 CIFAR-shaped samples, peak RSS growth: +2.40 GB at 512 samples a pass and views
    of the pool, +0.15 GB budgeted, 30 a pass, see ``input_hvp``). The output is allocated once and filled
    chunk by chunk: a small result tensor per chunk stays alive between the large
    Hessian-vector-product temporaries and pins the heap (measured on a LeNet, 20k samples:
    +1.25 GB peak with a list of chunk results, +0.66 GB filled in place; the same numbers)."""
    out = torch.empty(len(y), device=x.device)
    chunk = chunk or sample_chunk(model, x, hvp_copies(n_vectors))
    for a, b in chunks(len(y), batch_size):
        v = rademacher((n_vectors, b - a, *x.shape[1:]), generator, x.device)
        for c, d in chunks(b - a, chunk):
            hv = input_hvp(model, x[a + c:a + d], y[a + c:a + d], v[:, c:d])
            out[a + c:a + d] = hv.pow(2).flatten(2).sum(dim=2).mean(dim=0)
    return out


GARG = "Garg, Ravikumar & Roy 2024, Memorization Through the Lens of Curvature of Loss Function Around Samples (ICML)"


@register(label_blind=True, higher_is_harder=True, needs={"checkpoints"}, family="gradients", citation=GARG)
def curvature_hvp(ctx, n_vectors: int = 2):
    """Exact input-loss curvature (after Garg, Ravikumar & Roy 2024): Tr(H^2) with H = d^2 CE(f(x; theta_t), y) / dx^2,
    estimated by Hutchinson, (1/n) sum_j || H v_j ||^2 with n = 2 fresh Rademacher v_j per checkpoint,
    averaged over the kept checkpoints t (ctx.checkpoints; so 2 x their number of probes in all);
    higher = harder (memorised, atypical).

    Variant: the paper's quantity, Tr(H^2), with exact Hessian-vector products (forward-over-reverse)
    instead of the authors' finite differences (``curvature``). Averaged over the kept checkpoints
    (evenly spaced plus the early epoch) rather than every epoch. Note: for piecewise-linear networks
    (ReLU MLPs and CNNs) the logits have zero input Hessian almost everywhere, so H = J^T (diag p - p p^T) J
    does not depend on the label y: on such models the score is label-blind, which the finite
    differences of ``curvature`` are not (they cross activation kinks)."""
    generator = torch.Generator().manual_seed(int(ctx.seed))
    epochs = sorted(ctx.checkpoints)
    total = sum(hutchinson_curvature(ctx.model_at(e), ctx.x, ctx.y, n_vectors, generator) for e in epochs)
    return total / len(epochs)


#: rows (samples x (probes + 1)) whose probes are drawn at once by the finite-difference curvature: the
#: draws, hence the scores, do not depend on the chunks the gradients are computed in. The gradient
#: passes take as many rows as the activation budget allows (``sample_chunk``): airbench 32-64-64 on
#: 5,000 CIFAR-shaped samples, 90 rows a pass, peak RSS growth +0.14 GB (+0.70 GB at 512 rows a pass);
#: the time per row is about the same
CURVATURE_ROWS = 512


def input_loss_grads(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                     chunk: int | None = None) -> torch.Tensor:
    """d CE(f(x_i), y_i) / d x_i for every row: one reverse pass of the summed loss per chunk of
    ``chunk`` rows (default all), exact because samples do not interact in eval mode."""
    def summed_loss(xb, yb):
        return F.cross_entropy(model(xb), yb, reduction="sum")

    if chunk is None or chunk >= len(y):
        with torch.no_grad():  # torch.func.grad still differentiates w.r.t. xb; this stops parameter graphs
            return grad(summed_loss)(x, y)
    out = torch.empty_like(x)
    for a, b in chunks(len(y), chunk):
        with torch.no_grad():
            out[a:b] = grad(summed_loss)(x[a:b], y[a:b])
    return out


def finite_difference_curvature(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n_probes: int, h: float,
                                generator: torch.Generator, rows: int = CURVATURE_ROWS) -> torch.Tensor:
    """(1/n) sum_j || g(x + h v_j) - g(x) ||_2 / h per sample, g = d CE / dx and v_j Rademacher: the
    finite-difference estimate of E_v || H v || (Garg et al.'s code). The probes are drawn for
    ``rows`` // (n + 1) samples at a time; the clean points and probes of those samples ((n + 1)
    rows a sample) go through batched gradient passes of as many rows as the activation budget
    allows (``sample_chunk``)."""
    out = torch.empty(len(y), device=x.device)
    pass_rows = sample_chunk(model, x, BACKWARD_COPIES)
    for a, b in chunks(len(y), max(1, rows // (n_probes + 1))):
        xb = x[a:b]
        v = rademacher((n_probes, b - a, *x.shape[1:]), generator, x.device)
        points = torch.cat([xb.unsqueeze(0), xb + h * v]).flatten(0, 1)  # probe-major: clean, probe 1, ...
        g = input_loss_grads(model, points, y[a:b].repeat(n_probes + 1), pass_rows).reshape(n_probes + 1, b - a, -1)
        out[a:b] = (g[1:] - g[0]).norm(dim=2).mean(dim=0) / h
    return out


@register(higher_is_harder=True, needs={"checkpoints"}, family="gradients", citation=GARG)
def curvature(ctx, n_probes: int = 10, h: float = 1e-3):
    """Input-loss curvature (Garg, Ravikumar & Roy 2024) as the authors compute it: with g_t(x) = d CE(f(x; theta_t), y) / dx,
    curv_t(x) = (1/n) sum_j || g_t(x + h v_j) - g_t(x) ||_2 / h, n = 10 fresh Rademacher probes v_j and
    h = 1e-3, averaged over the kept checkpoints t; higher = harder (memorised, atypical, mislabelled).

    Variant: the authors' finite-difference estimate. Reference:
    github.com/purdue-nrl/Memorization-Curvature, score_imagenet_checkpoint.py,
    ``get_regularized_curvature_for_batch(..., h=1e-3, niter=10)``: per probe the input gradient of
    CE(x + h v) - CE(x), and the mean of its norm over the probes, the finite-difference estimate of
    E_v || H v || (the paper writes Tr(H^2) = E_v || H v ||^2; the code averages the unsquared norm,
    which we follow); every saved epoch is scored (every 4th on ImageNet). The function's default
    and the log name use h = 1e-3 (the script's command-line default is 1e-4); we take 1e-3. Because
    the difference spans a finite step, it reads the label through the activation kinks of ReLU
    networks, where the exact Hessian does not (``curvature_hvp``).

    Deviations: divided by h (the authors' score is not; a constant factor, same ranking); the loss is
    summed over the batch, not averaged (their batch mean scales every score of a batch by 1/B, the
    last, shorter batch differently); their 1e-7 offset on v is left out; the checkpoints are the
    kept ones (evenly spaced plus the early epoch, ``recipe.checkpoint_epochs()``), not every epoch.

    Cost: n + 1 = 11 input-gradient passes (forward and backward) per sample per checkpoint, so
    11 x K with K kept checkpoints (10 x K probes in all; digits and MNIST recipes: K = 6, 66 passes);
    on LeNet about 2.6 times the time of ``curvature_hvp`` (2 probes), measured in one process."""
    generator = torch.Generator().manual_seed(int(ctx.seed))
    epochs = sorted(ctx.checkpoints)
    total = sum(finite_difference_curvature(ctx.model_at(e), ctx.x, ctx.y, n_probes, h, generator) for e in epochs)
    return total / len(epochs)


def last_layer_grad_sq_norms(model, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """|| grad_{W,b} CE(head(embed(x_i)), y_i) ||^2 over the head's parameters, per sample, in
    closed form: the head is linear, z = W a + b, and dCE/dz = softmax(z) - onehot(y) = delta,
    so ||grad_W||^2 + ||grad_b||^2 = ||delta||^2 (||a||^2 + 1) (no + 1 without a bias). No-grad
    forward passes of ``batch_size`` samples, by default as many as the activation budget allows
    (airbench 32-64-64, 5,000 CIFAR-shaped samples, peak RSS growth: +1.24 GB at 4096 samples a
    pass, +0.11 GB budgeted, 360 a pass)."""
    out = torch.empty(len(y), device=x.device)
    bias = 1.0 if model.head.bias is not None else 0.0
    batch_size = batch_size or sample_chunk(model, x, NO_GRAD_COPIES)
    with torch.no_grad():
        for a, b in chunks(len(y), batch_size):
            features = model.embed(x[a:b])
            delta = torch.softmax(model.head(features).float(), 1)
            delta[torch.arange(b - a, device=x.device), y[a:b]] -= 1
            out[a:b] = delta.pow(2).sum(1) * (features.pow(2).sum(1) + bias)
    return out


@register(higher_is_harder=True, needs={"checkpoints"}, family="gradients",
          citation="Pruthi et al. 2020, Estimating Training Data Influence by Tracing Gradient Descent (NeurIPS)")
def tracin_self(ctx):
    """TracInCP self-influence (Pruthi et al. 2020): sum over kept checkpoints t of
    eta_t || grad_{W,b} CE(f(x; theta_t), y) ||^2, eta_t the mean learning rate of epoch t (ctx.lrs);
    higher = more self-influence = harder.

    Variant: the paper's checkpoint approximation (TracInCP) of self-influence, restricted to the last
    layer's weights and bias as the paper does in its experiments for cost. Checkpoints: the kept
    ones (evenly spaced plus the early epoch), not every epoch."""
    total = 0.0
    for epoch in sorted(ctx.checkpoints):
        total = total + float(ctx.lrs[epoch - 1]) * last_layer_grad_sq_norms(ctx.model_at(epoch), ctx.x, ctx.y)
    return total
