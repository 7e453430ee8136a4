"""Training losses of the seeds, written as small pure functions.

- segmentation_loss: cross-entropy with ignore index on logits resized to the label map (bilinear,
  align_corners=True, as AR-Seg and ETC upsample before the loss).
- feature_similarity_loss: AR-Seg's FST, MSE between the fused LR feature (resized to the HR feature's grid)
  and the HR network's feature of the same frame (arseg.md section 4).
- distillation_loss: KL(HR logits || student logits) at a temperature, towards the HR network's output on the
  same frame (the demo recipe's addition to AR-Seg's stage 2; AR-Seg distils features only).
- temporal_consistency_loss: ETC's motion loss (etc.md section 5): the other frame's prediction and image are
  warped into this frame by optical flow (border-clamped bilinear, as flownet2's Resample2d), weighted by
  M = exp(-|sum_c (I_t - warped I_t')|), and the squared difference of the masked predictions is averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["segmentation_loss", "feature_similarity_loss", "distillation_loss", "temporal_consistency_loss",
           "resample_border"]


def segmentation_loss(logits: Tensor, labels: Tensor, *, ignore_index: int = 255,
                      weight: Tensor | None = None) -> Tensor:
    """Cross-entropy of logits [N,K,h,w] against labels [N,H,W] (int), logits upsampled to H x W first."""
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=True)
    return F.cross_entropy(logits.float(), labels.long(), weight=weight, ignore_index=ignore_index)


def feature_similarity_loss(fused: Tensor, hr_feature: Tensor) -> Tensor:
    """AR-Seg FST: MSE(hr_feature, fused resized to hr_feature's grid), mean over all elements."""
    if fused.shape[-2:] != hr_feature.shape[-2:]:
        fused = F.interpolate(fused, size=hr_feature.shape[-2:], mode="bilinear", align_corners=True)
    return F.mse_loss(fused.float(), hr_feature.float())


def distillation_loss(student: Tensor, teacher: Tensor, temperature: float = 1.0) -> Tensor:
    """KL(softmax(teacher / T) || softmax(student / T)) * T^2, mean over pixels; logits [N, K, h, w], the
    student's resized to the teacher's grid (bilinear, align_corners=True)."""
    if student.shape[-2:] != teacher.shape[-2:]:
        student = F.interpolate(student, size=teacher.shape[-2:], mode="bilinear", align_corners=True)
    t = float(temperature)
    log_p = F.log_softmax(student.float() / t, dim=1)
    log_q = F.log_softmax(teacher.float() / t, dim=1)
    return (log_q.exp() * (log_q - log_p)).sum(1).mean() * t * t


def resample_border(x: Tensor, flow: Tensor) -> Tensor:
    """out(p) = bilinear(x, p + flow(p)) with neighbour indices clamped to the border (flownet2 Resample2d)."""
    n, _, height, width = x.shape
    ys = torch.arange(height, device=x.device, dtype=torch.float32).view(1, height, 1)
    xs = torch.arange(width, device=x.device, dtype=torch.float32).view(1, 1, width)
    gx = 2.0 * (xs + flow[:, 0].float()) / max(width - 1, 1) - 1.0
    gy = 2.0 * (ys + flow[:, 1].float()) / max(height - 1, 1) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)


def temporal_consistency_loss(logits_t: Tensor, logits_other: Tensor, image_t: Tensor, image_other: Tensor,
                              flow: Tensor, *, weight: float = 0.1) -> Tensor:
    """ETC motion loss. flow [N,2,H,W]: backward map from frame t into the other frame, in pixels of H x W.

    Logits are upsampled to the images' size (align_corners=True). Images are the normalised network inputs.
    The mask and flow are constants; gradients reach both predictions.
    """
    size = image_t.shape[-2:]
    p = F.interpolate(logits_t.float(), size=size, mode="bilinear", align_corners=True)
    p_other = F.interpolate(logits_other.float(), size=size, mode="bilinear", align_corners=True)
    with torch.no_grad():
        warped_image = resample_border(image_other, flow)
        mask = torch.exp(-(image_t.float() - warped_image).sum(1, keepdim=True).abs())
    warped_p = resample_border(p_other, flow)
    return weight * F.mse_loss(mask * p, mask * warped_p)
