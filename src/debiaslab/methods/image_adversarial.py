"""Adversarial removal in image space: a U-Net mask (Wang et al. 2019, their ``ae_adv_train.py``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import ArrayDataset, Batch
from ..models import SmallCNN
from .base import Method, per_sample_loss, register_method
from .removal import adversary_loss, gradient_reversal, protected_balanced_order

# grl_weight: λ of the gradient reversal into the mask; l1_weight: β of the L1 pull of the masked
# image towards the input (1.0 in the original); the U-Net's first width and number of halvings;
# the width of the CNN adversary that looks at the masked image
HPARAMS = {"grl_weight": 1.0, "l1_weight": 1.0, "mask_width": 16, "mask_depth": 3,
           "adversary_width": 16}
MULTILABEL = True
MASK_BIAS = 3.0  # sigmoid(3) = 0.95: training starts from an almost transparent mask, as the original


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out),
                         nn.LeakyReLU(0.2, inplace=True))


class MaskUNet(nn.Module):
    """A U-Net that outputs one mask channel in (0, 1) at the input's size.

    ``depth`` stride-2 convolutions (widths w, 2w, 4w, ...) down; up again by bilinear resizing to
    each skip connection's size, concatenation and a 3×3 convolution; a sigmoid last. Any input
    size works: the decoder resizes to the encoder's shapes rather than assuming powers of two.
    """

    def __init__(self, width: int, depth: int):
        super().__init__()
        widths = [width * 2 ** i for i in range(depth)]
        self.down = nn.ModuleList(_down(c_in, c_out)
                                  for c_in, c_out in zip([3, *widths[:-1]], widths, strict=True))
        # decoder levels, deepest first: the skip each concatenates, and its output width
        skips, outs = [*reversed(widths[:-1]), 3], [*reversed(widths[:-1]), width]
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_in + c_skip, c_out, 3, padding=1), nn.BatchNorm2d(c_out),
                          nn.ReLU(inplace=True))
            for c_in, c_skip, c_out in zip(reversed(widths), skips, outs, strict=True))
        self.out = nn.Conv2d(width, 1, 1)
        nn.init.constant_(self.out.bias, MASK_BIAS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, h = [], x
        for block in self.down:
            skips.append(h)
            h = block(h)
        for block, skip in zip(self.up, reversed(skips), strict=True):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], 1))
        return torch.sigmoid(self.out(h))


class MaskedClassifier(nn.Module):
    """The model that predicts: the task classifier on ``x · mask(x)``; the checkpoint holds both."""

    def __init__(self, mask: MaskUNet, classifier: nn.Module):
        super().__init__()
        self.mask, self.classifier = mask, classifier
        self.head = classifier.head

    def masked(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.embed(self.masked(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.masked(x))


@register_method("image_adversarial")
class ImageSpaceAdversarial(Method):
    """Adversarial removal of the protected attribute from the image itself (Wang et al. 2019).

    A U-Net mask is multiplied into the image; the task classifier sees only the masked image. A
    CNN adversary predicts the protected attribute from the masked image through a gradient
    reversal layer of weight ``grl_weight``, so the mask learns to hide it, while ``l1_weight`` · L1
    (masked, input) keeps the mask from blanking the image. One optimiser, task + adversary + β·L1,
    protected-balanced batches, as the original. Its adversary was a ResNet-18 pretrained on
    protected-balanced data; here a small CNN trains from scratch alongside.
    """

    def __init__(self, factory, params, device, hparams=None, context=None):
        def masked_model():  # called by Method.__init__ once self.hparams is set
            return MaskedClassifier(MaskUNet(int(self.hparams["mask_width"]),
                                             int(self.hparams["mask_depth"])), factory())

        super().__init__(masked_model, params, device, hparams, context)
        self.adversary = self._place(SmallCNN(2, width=int(self.hparams["adversary_width"])))
        self.optimizer = self.make_optimizer([*self.model.parameters(), *self.adversary.parameters()])

    def epoch_order(self, data: ArrayDataset, generator: torch.Generator) -> np.ndarray:
        return protected_balanced_order(self.name, data, generator)

    def update(self, batch: Batch) -> dict[str, float]:
        with self.autocast():
            masked = self.model.masked(batch.x)
            logits = self.model.classifier(masked)
            adversary = self.adversary(gradient_reversal(masked, float(self.hparams["grl_weight"])))
        task = per_sample_loss(logits, batch.y).mean()
        adv, adv_logs = adversary_loss(adversary, batch.g)
        l1 = (masked.float() - batch.x).abs().mean()
        self.step(task + adv + float(self.hparams["l1_weight"]) * l1)
        return {"loss": task.item(), **adv_logs, "l1": l1.item()}
