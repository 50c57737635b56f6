"""Models: an MLP, LeNet-5, a small CNN, the airbench CIFAR-10 net and a low-resolution ResNet-18.

Every model is a stack of blocks followed by a linear head, so that methods can
read any layer: ``embed(x)`` gives the penultimate features, ``layer_outputs(x)``
every block's output (flattened) and finally the logits.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .errors import UnknownName


class BlockNet(nn.Module):
    def __init__(self, blocks: list[nn.Module], head: nn.Linear):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x.flatten(1))
        outputs.append(self.head(x.flatten(1)))
        return outputs


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def mlp(input_shape, num_classes: int, hidden=(256, 256), activation: str = "relu") -> BlockNet:
    width = math.prod(input_shape)
    blocks = []
    for i, h in enumerate(hidden):
        layers = [nn.Flatten()] if i == 0 else []
        blocks.append(nn.Sequential(*layers, nn.Linear(width, h), ACTIVATIONS[activation]()))
        width = h
    if not blocks:
        blocks.append(nn.Flatten())
    return BlockNet(blocks, nn.Linear(width, num_classes))


def small_cnn(input_shape, num_classes: int, width: int = 32, activation: str = "relu") -> BlockNet:
    """Three 3x3 conv blocks (width, 2*width, 4*width) and global average pooling.
    No batch norm, so per-sample gradients and stacked training need no buffers."""
    channels = input_shape[0]
    act = ACTIVATIONS[activation]
    blocks = [
        nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), act()),
        nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), act(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(2 * width, 4 * width, 3, padding=1), act(), nn.AdaptiveAvgPool2d(1)),
    ]
    return BlockNet(blocks, nn.Linear(4 * width, num_classes))


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet18(input_shape, num_classes: int, width: int = 64) -> BlockNet:
    """ResNet-18 for 32x32 inputs (3x3 stem, no max-pool), as in the CIFAR literature."""
    channels = input_shape[0]
    stem = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
    blocks, c = [stem], width
    for i, c_out in enumerate([width, 2 * width, 4 * width, 8 * width]):
        stride = 1 if i == 0 else 2
        blocks += [_BasicBlock(c, c_out, stride), _BasicBlock(c_out, c_out, 1)]
        c = c_out
    blocks.append(nn.AdaptiveAvgPool2d(1))
    return BlockNet(blocks, nn.Linear(c, num_classes))


def lenet(input_shape, num_classes: int, activation: str = "relu") -> BlockNet:
    """LeNet-5 (LeCun et al. 1998) as the prior benchmark trains it on MNIST: two 5x5 conv
    blocks (6 and 16 channels, each followed by 2x2 max-pooling) and fully connected layers
    of 120 and 84 units. Inputs smaller than 32x32 are zero-padded by 2 in the first conv
    (28x28 MNIST then has LeNet's 32x32 geometry); the flattened width follows the input."""
    if len(input_shape) != 3 or min(input_shape[1:]) < 28:
        raise ValueError(f"lenet needs image inputs of at least 28x28 pixels, got shape {tuple(input_shape)}; "
                         "use --model mlp for smaller inputs")
    channels, height = input_shape[0], input_shape[1]
    act = ACTIVATIONS[activation]
    convs = [
        nn.Sequential(nn.Conv2d(channels, 6, 5, padding=2 if height < 32 else 0), act(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(6, 16, 5), act(), nn.MaxPool2d(2)),
    ]
    with torch.no_grad():
        width = nn.Sequential(*convs)(torch.zeros(1, *input_shape)).numel()
    blocks = [*convs, nn.Sequential(nn.Flatten(), nn.Linear(width, 120), act()), nn.Sequential(nn.Linear(120, 84), act())]
    return BlockNet(blocks, nn.Linear(84, num_classes))


def _conv_group(c_in: int, c_out: int) -> nn.Sequential:
    """airbench's ConvGroup: conv, 2x2 max-pool, BN, GELU, conv, BN, GELU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c_out),
                         nn.GELU(), nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU())


def airbench(input_shape, num_classes: int, widths=(64, 256, 256)) -> BlockNet:
    """The network of airbench94 (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single
    GPU"): a 2x2 conv stem, then three blocks of (conv-BN-GELU, 2x2 max-pool, conv-BN-GELU)
    with widths 64/256/256, global max-pooling and a linear head. The paper's fixed whitening
    stem, lookahead and test-time flipping are left out: the suite needs a plain, reproducible
    trainer shared by every recipe."""
    channels = input_shape[0]
    stem = nn.Sequential(nn.Conv2d(channels, 24, 2, padding=0, bias=False), nn.BatchNorm2d(24), nn.GELU())
    blocks, c = [stem], 24
    for w in widths:
        blocks.append(_conv_group(c, w))
        c = w
    blocks.append(nn.AdaptiveMaxPool2d(1))
    return BlockNet(blocks, nn.Linear(c, num_classes, bias=False))


MODELS = {"mlp": mlp, "lenet": lenet, "cnn": small_cnn, "airbench": airbench, "resnet18": resnet18}


def build_model(name: str, input_shape, num_classes: int, **kwargs) -> BlockNet:
    """The named model. Image models keep their conv weights channels-last: oneDNN's
    convolution and max-pooling then run channels-last on the CPU too, measured 1.5x faster
    for a LeNet-5 training step and 1.7x for its forward pass and input gradients (batch
    128 and 2048, one thread). Same values up to floating-point summation order; inputs stay
    as they are (the first convolution's output follows the weight's layout)."""
    if name not in MODELS:
        raise UnknownName("model", name, MODELS)
    model = MODELS[name](input_shape, num_classes, **kwargs)
    if len(input_shape) == 3:
        model = model.to(memory_format=torch.channels_last)
    return model
