"""The small CNN of the digits-cnn sample (imports torch; loaded lazily).

The network reads one 8×8 grey image scaled to [0, 1] (the shipped uint8
image divided by 255) and has three 3×3 convolutions:

=======  ========================================  ========  ========
layer    operation                                 channels  map size
=======  ========================================  ========  ========
conv1    Conv2d(1, 32, 3, padding=1), BN, ReLU     32        8×8
conv2    Conv2d(32, 64, 3, padding=1), BN, ReLU    64        8×8
pool     MaxPool2d(2)                              64        4×4
conv3    Conv2d(64, 128, 3, padding=1), BN, ReLU   128       4×4
head     mean over space, Linear(128, 10)          10        logits
=======  ========================================  ========  ========

BN is ``BatchNorm2d``; it keeps every channel alive (without it a third of
conv3's channels never fire on any image and would be constant units).

A layer's per-channel activation for one image is the spatial mean of its
feature map after the ReLU.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

LAYERS: tuple[str, ...] = ("conv1", "conv2", "conv3")
CHANNELS: dict[str, int] = {"conv1": 32, "conv2": 64, "conv3": 128}


class DigitsCNN(nn.Module):
    """Three-convolution classifier for 8×8 digit images (see module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(128)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(128, 10)

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the post-ReLU maps of every layer for input (n, 1, 8, 8)."""
        h1 = torch.relu(self.bn1(self.conv1(x)))
        h2 = torch.relu(self.bn2(self.conv2(h1)))
        h3 = torch.relu(self.bn3(self.conv3(self.pool(h2))))
        return {"conv1": h1, "conv2": h2, "conv3": h3}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape (n, 10) for input of shape (n, 1, 8, 8)."""
        h3 = self.feature_maps(x)["conv3"]
        return self.head(h3.mean(dim=(2, 3)))


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """Turn uint8 images (n, 8, 8) into the float32 input (n, 1, 8, 8)."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32) / 255.0)
    return x.unsqueeze(1)


@torch.no_grad()
def activations(
    model: nn.Module, images: np.ndarray, layers: tuple[str, ...] = LAYERS
) -> dict[str, np.ndarray]:
    """Spatial means of post-ReLU maps, float32 (n_images, channels) per layer."""
    model.eval()
    maps = model.feature_maps(images_to_tensor(images))
    return {name: maps[name].mean(dim=(2, 3)).numpy() for name in layers}
