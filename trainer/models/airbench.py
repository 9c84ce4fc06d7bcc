"""A wide, shallow CIFAR net of the airbench lineage (Page's ResNet-9 → hlb-CIFAR10 → Jordan's airbench94).

Few layers, 64-256 channels: convolutions large enough for oneDNN to run near peak on a CPU,
where ResNet-20's 16-channel ones are memory-bound. The first layer is a fixed 2×2 patch-whitening
convolution set from the training data (:meth:`AirbenchNet.init_from_data`); the rest are
three groups of conv → max-pool → BN → GELU → conv → BN → GELU, then a global max-pool and a
linear layer scaled by 1/9. Each recipe piece is a switch so its worth can be measured.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model

BASE_WIDTHS = (64, 256, 256)
WHITEN_PATCH = 2
WHITEN_EPS = 5e-4
LOGIT_SCALE = 1 / 9


class FrozenScaleBN(nn.BatchNorm2d):
    """BatchNorm whose scale stays 1 (only the bias learns), with airbench's fast running statistics."""

    def __init__(self, channels: int, momentum: float = 0.4, eps: float = 1e-12, frozen_scale: bool = True):
        super().__init__(channels, eps=eps, momentum=momentum)
        self.weight.requires_grad_(not frozen_scale)


class ConvGroup(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, bn: dict):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.norm1 = FrozenScaleBN(out_ch, **bn)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.norm2 = FrozenScaleBN(out_ch, **bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class AirbenchNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: float = 1.0, whiten: bool = True, dirac: bool = True,
                 bn_momentum: float = 0.4, bn_eps: float = 1e-12, frozen_bn_scale: bool = True):
        super().__init__()
        widths = [max(8, round(w * width)) for w in BASE_WIDTHS]
        stem_ch = 2 * 3 * WHITEN_PATCH ** 2
        self.whiten = nn.Conv2d(3, stem_ch, WHITEN_PATCH, bias=True)
        self.whiten.weight.requires_grad_(not whiten)  # set from data and kept when whitening
        self.whitened = whiten
        bn = {"momentum": bn_momentum, "eps": bn_eps, "frozen_scale": frozen_bn_scale}
        self.layer1 = ConvGroup(stem_ch, widths[0], bn)
        self.layer2 = ConvGroup(widths[0], widths[1], bn)
        self.layer3 = ConvGroup(widths[1], widths[2], bn)
        self.fc = nn.Linear(widths[2], num_classes, bias=False)
        if dirac:
            for m in self.modules():
                if isinstance(m, nn.Conv2d) and m is not self.whiten:
                    nn.init.dirac_(m.weight.data[: m.in_channels])  # the first filters pass their input on

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor) -> None:
        """Set the whitening filters from normalized NCHW training images: the eigenvectors of the
        2×2 patch covariance, scaled to unit variance, and their negatives (so ReLU-like units keep both signs)."""
        if not self.whitened:
            return
        w = whitening_filters(images.float(), WHITEN_PATCH)
        self.whiten.weight.copy_(torch.cat((w, -w)).to(self.whiten.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.whiten(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = x.amax(dim=(2, 3))  # global max-pool; one ReduceMax in ONNX, no Reshape
        return self.fc(x) * LOGIT_SCALE


# A patch direction whose variance is this share of the largest, or less, carries no signal in the
# training data: grayscale photos have none in their 8 colour directions (float64 eigenvalues ~1e-16 of the
# largest; CIFAR-10's smallest is 1.1e-5). Scaled by 1/sqrt(eps), its filter multiplies an exact
# cancellation by ~45, which FP16 weights turn into noise (an FP16 export 2.8e-2 off against a 1e-2 bar);
# zeroed, it leaves a channel of zero variance that BatchNorm's 1e-12 eps turns into NaN gradients. Its
# slot takes a copy of a direction that has signal instead.
NULL_VARIANCE = 1e-9


def whitening_filters(images: torch.Tensor, patch: int, eps: float = WHITEN_EPS) -> torch.Tensor:
    """``(c·patch², c, patch, patch)`` filters that map each patch onto decorrelated unit-variance components."""
    c = images.shape[1]
    patches = images.unfold(2, patch, 1).unfold(3, patch, 1)  # n, c, h', w', p, p
    patches = patches.transpose(1, 3).reshape(-1, c * patch * patch).double()
    cov = torch.cov(patches.T)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    filters = eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]
    null = eigenvalues <= NULL_VARIANCE * eigenvalues.max()  # see NULL_VARIANCE
    if null.any():
        kept = filters[~null].flip(0)  # strongest first
        filters[null] = kept[torch.arange(int(null.sum())) % len(kept)]
    return filters.flip(0).reshape(-1, c, patch, patch).float()


@register_model("airbench", "airbench",
                "whitening conv + 3 conv groups 64/256/256, no residuals (airbench94 lineage)")
def airbench(num_classes: int = 10, **kwargs) -> nn.Module:
    return AirbenchNet(num_classes, **kwargs)
