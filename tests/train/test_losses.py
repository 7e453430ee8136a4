import pytest
import torch
import torch.nn.functional as F

from vidseg.train.losses import (
    feature_similarity_loss,
    resample_border,
    segmentation_loss,
    temporal_consistency_loss,
)


def test_segmentation_loss_ignores_ignore_index_and_upsamples():
    logits = torch.randn(1, 3, 4, 4)
    labels = torch.full((1, 8, 8), 255, dtype=torch.long)
    labels[0, :4, :4] = 1
    up = F.interpolate(logits, size=(8, 8), mode="bilinear", align_corners=True)
    expected = F.cross_entropy(up[..., :4, :4], labels[..., :4, :4])
    assert torch.allclose(segmentation_loss(logits, labels), expected, atol=1e-6)


def test_fst_is_zero_for_identical_features_and_resizes():
    hr = torch.randn(1, 4, 8, 8)
    assert feature_similarity_loss(hr, hr).item() == 0
    small = torch.randn(1, 4, 4, 4)
    assert feature_similarity_loss(small, hr).item() > 0


def test_resample_border_integer_shift_and_clamp():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    flow = torch.zeros(1, 2, 3, 4)
    flow[:, 0] = 1.0  # each pixel takes its right neighbour; the last column clamps to the border
    out = resample_border(x, flow)
    assert torch.equal(out[0, 0, :, :3], x[0, 0, :, 1:])
    assert torch.equal(out[0, 0, :, 3], x[0, 0, :, 3])


def test_temporal_loss_zero_when_consistent_and_positive_otherwise():
    img = torch.randn(1, 3, 8, 8)
    logits = torch.randn(1, 5, 8, 8, requires_grad=True)
    zero = torch.zeros(1, 2, 8, 8)
    assert temporal_consistency_loss(logits, logits, img, img, zero).item() == pytest.approx(0.0)
    other = torch.randn(1, 5, 8, 8, requires_grad=True)
    loss = temporal_consistency_loss(logits, other, img, img, zero)
    loss.backward()
    assert loss.item() > 0 and other.grad is not None and logits.grad is not None


def test_distillation_loss_is_zero_for_equal_logits_and_positive_otherwise():
    from vidseg.train.losses import distillation_loss

    torch.manual_seed(0)
    teacher = torch.randn(2, 5, 8, 8)
    assert distillation_loss(teacher, teacher, 2.0).abs() < 1e-6
    student = torch.randn(2, 5, 4, 4, requires_grad=True)  # resized to the teacher's grid
    loss = distillation_loss(student, teacher, 2.0)
    assert loss > 0
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
