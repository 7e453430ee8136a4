import torch

from vidseg.kernels import ops, reference


def test_exact_warp_zero_motion_is_identity():
    x = torch.randn(2, 3, 5, 7)
    assert torch.allclose(reference.warp(x, torch.zeros(2, 2, 5, 7), "exact"), x, atol=1e-6)


def test_arseg_warp_zero_motion_is_not_identity():
    x = torch.randn(1, 2, 6, 8)
    assert (reference.warp(x, torch.zeros(1, 2, 6, 8), "arseg") - x).abs().max() > 0.1


def test_custom_op_matches_reference():
    q, k, v = torch.randn(3, 1, 4, 8, 9).unbind(0)
    assert torch.allclose(ops.creff(q, k, v, q), reference.creff(q, k, v, q))
