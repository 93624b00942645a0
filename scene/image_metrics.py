"""Image losses and metrics on ``[B,H,W,3]`` tensors in [0,1]: PSNR and SSIM (Gaussian window, as Wang et al.).

Written here rather than pulling pytorch-msssim: it is a few lines, differentiable, runs on any device.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB ``[B]`` for images in [0,1]."""
    mse = (prediction - target).pow(2).flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-10))


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM ``[B]`` of ``[B,H,W,C]`` images, 11×11 Gaussian window (σ 1.5), valid region only."""
    channels = prediction.shape[-1]
    x = prediction.permute(0, 3, 1, 2)  # [B,C,H,W]
    y = target.permute(0, 3, 1, 2)
    coords = torch.arange(SSIM_WINDOW, device=x.device, dtype=x.dtype) - SSIM_WINDOW // 2
    kernel_1d = torch.exp(-coords ** 2 / (2 * SSIM_SIGMA ** 2))
    kernel_1d = kernel_1d / kernel_1d.sum()
    window = (kernel_1d[:, None] * kernel_1d[None, :]).expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW)

    def blur(image):  # depthwise: each channel on its own
        return F.conv2d(image, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
                / ((mu_x ** 2 + mu_y ** 2 + SSIM_C1) * (var_x + var_y + SSIM_C2)))
    return ssim_map.flatten(1).mean(1)
