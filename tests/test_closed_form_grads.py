"""Per-sample gradient norms in closed form (linear, convolution and eval-mode batch-norm layers) equal
torch.func's vmap(grad) on tiny models, and fall back where the closed form does not apply."""
import numpy as np
import pytest
import torch

from bench.models import build_model
from methods.gradients import closed_form_grad_norms, last_layer_grad_sq_norms, per_sample_grad_norms


@pytest.mark.parametrize("name, shape, kwargs", [
    ("lenet", (1, 28, 28), {}),  # padded 5x5 convolutions, max-pooling
    ("cnn", (2, 8, 8), {"width": 3}),  # 3x3 convolutions, global average pooling
    ("mlp", (1, 8, 8), {"hidden": [16, 12]}),
    ("airbench", (3, 16, 16), {"widths": (4, 6, 6)}),  # batch norms after pooling, GELU, no head bias
    ("resnet18", (3, 8, 8), {"width": 2}),  # batch norms in the residual branches and shortcuts
])
def test_closed_form_equals_vmap_grad(name, shape, kwargs):
    torch.manual_seed(0)
    model = build_model(name, shape, 4, **kwargs)
    with torch.no_grad():  # running statistics and affine parameters that are not the identity
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5), module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5), module.bias.uniform_(-0.5, 0.5)
    model.eval()
    x, y = torch.randn(9, *shape), torch.randint(0, 4, (9,))
    reference = per_sample_grad_norms(model, x, y, closed_form=False)
    closed = closed_form_grad_norms(model, x, y)
    assert closed is not None
    np.testing.assert_allclose(closed.detach(), reference, rtol=1e-4)
    np.testing.assert_allclose(per_sample_grad_norms(model, x, y, chunk_size=4), reference, rtol=1e-4)


def test_strided_dilated_convolution_and_fallbacks():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, stride=2, padding=1, dilation=2), torch.nn.ReLU(),
                              torch.nn.Conv2d(3, 4, 2, bias=False), torch.nn.Flatten(), torch.nn.LazyLinear(3))
    x, y = torch.randn(5, 2, 9, 9), torch.randint(0, 3, (5,))
    net(x)
    net.eval()
    np.testing.assert_allclose(closed_form_grad_norms(net, x, y).detach(),
                               per_sample_grad_norms(net, x, y, closed_form=False), rtol=1e-4)
    training_bn = build_model("resnet18", (3, 8, 8), 3, width=2).train()  # batch statistics couple the samples
    assert closed_form_grad_norms(training_bn, torch.randn(2, 3, 8, 8), torch.tensor([0, 1])) is None
    grouped = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3, groups=2), torch.nn.Flatten(), torch.nn.Linear(2 * 49, 3))
    assert closed_form_grad_norms(grouped.eval(), torch.randn(2, 2, 9, 9), torch.tensor([0, 1])) is None


@pytest.mark.parametrize("name, shape, kwargs", [("lenet", (1, 28, 28), {}), ("airbench", (3, 16, 16),
                                                                              {"widths": (4, 4, 4)})])
def test_last_layer_closed_form_equals_vmap_grad(name, shape, kwargs):
    """The head's closed form, with a bias (LeNet) and without (airbench's head)."""
    from torch.func import functional_call, grad, vmap
    import torch.nn.functional as F

    torch.manual_seed(2)
    model = build_model(name, shape, 5, **kwargs).eval()
    x, y = torch.randn(6, *shape), torch.randint(0, 5, (6,))
    params = {k: v.detach() for k, v in model.head.named_parameters()}

    def sq(p, feature, yi):
        g = grad(lambda q: F.cross_entropy(functional_call(model.head, q, (feature[None],)), yi[None]))(p)
        return sum(v.pow(2).sum() for v in g.values())

    with torch.no_grad():
        expected = vmap(sq, in_dims=(None, 0, 0))(params, model.embed(x), y)
    np.testing.assert_allclose(last_layer_grad_sq_norms(model, x, y, batch_size=4), expected, rtol=1e-4)
