"""GSVNet's guided spatially-varying refinement: the networks that turn the warped previous logits and the
current frame into refined logits (the seed's model/gsv/network.py, model/intra, model/guide).

Used by the refine stage of `vidseg.models.flowwarp`; the module names mirror the seed's, so its .tar files load.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidseg.kernels.reference import guided_sv_conv

__all__ = ["IdealDelayKernels", "IntraNetwork", "GuidingNetwork", "GuidedSpatiallyVaryingConv", "End2End",
           "ideal_delay_filters", "gsv_edge_map"]


def _bil(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def ideal_delay_filters(kernel_size: int = 3, count: int = 9) -> Tensor:
    """The seed's fixed delay kernels [count,1,1,k,k]: one-hot at each 3x3 position but the centre, row-major;
    the remaining filter(s) stay zero (filter 8 of 9)."""
    filters = torch.zeros(count, 1, 1, kernel_size, kernel_size)
    offset = (kernel_size - 3) // 2
    idx = 0
    for i in range(offset, kernel_size - offset):
        for j in range(offset, kernel_size - offset):
            if i == kernel_size // 2 and j == kernel_size // 2:
                continue
            filters[idx, 0, 0, i, j] = 1.0
            idx += 1
    return filters


def _refresh_after_load(module: IdealDelayKernels, _incompatible_keys: object) -> None:
    module.refresh()


class IdealDelayKernels(nn.Module):
    """Holds `filter_copy_s` (a frozen parameter in the seed's checkpoint). `ideal` says whether it is the fixed
    one-pixel-shift set, in which case the refinement uses `guided_sv_conv`; otherwise (a checkpoint trained with
    `--train-filter 1`) the candidates are the general 3x3 filterings of the logits."""

    def __init__(self, kernel_size: int = 3, count: int = 9) -> None:
        super().__init__()
        self.filter_copy_s = nn.Parameter(ideal_delay_filters(kernel_size, count), requires_grad=False)
        self.ideal = True
        self.register_load_state_dict_post_hook(_refresh_after_load)

    def refresh(self) -> bool:
        """Recompute `ideal` from the current filter values (called after every load_state_dict)."""
        f = self.filter_copy_s.detach()
        if f.device.type == "meta":  # shapes only (e.g. MAC counting): nothing to compare
            return self.ideal
        ref = ideal_delay_filters(f.shape[-1], f.shape[0]).to(device=f.device)
        self.ideal = f.shape == ref.shape and bool(torch.equal(f.float(), ref))
        return self.ideal

    def candidates(self, x: Tensor) -> Tensor:
        """General path: [N,K,H,W] -> [N,count,K,H,W], each filter applied per class with zero padding (the
        seed's conv3d with padding (0,1,1))."""
        n, k, height, width = x.shape
        f = self.filter_copy_s.to(x.dtype)
        weight = f.reshape(f.shape[0], 1, f.shape[-2], f.shape[-1])
        out = F.conv2d(x.reshape(n * k, 1, height, width), weight, padding=f.shape[-1] // 2)
        return out.reshape(n, k, f.shape[0], height, width).transpose(1, 2)


class IntraNetwork(nn.Module):
    """Conv3x3(3->32)-BN-ReLU-Conv3x3(32->32)-BN-ReLU-Conv3x3(32->19): intra-frame logits from the low-res image."""

    def __init__(self, cin: int = 3, mid: int = 32, cout: int = 19) -> None:
        super().__init__()
        self.intra_net = nn.Sequential(
            nn.Conv2d(cin, mid, 3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, cout, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.intra_net(x)


class GuidingNetwork(nn.Module):
    """cat[A, E] (20 ch) -> 11 non-negative per-pixel weights; a small U-shape (h -> h/4 -> h) with a skip."""

    def __init__(self, cin: int = 20, mid: int = 32, cout: int = 11) -> None:
        super().__init__()
        self.guide_conv = nn.Sequential(nn.Conv2d(cin, mid, 3, padding=1), nn.BatchNorm2d(mid), nn.ReLU())
        self.guide_conv_feat = nn.Sequential(
            nn.Conv2d(mid, mid * 2, 3, stride=2, padding=1),
            nn.BatchNorm2d(mid * 2),
            nn.ReLU(),
            nn.Conv2d(mid * 2, mid * 4, 3, stride=2, padding=1),
            nn.BatchNorm2d(mid * 4),
            nn.ReLU(),
        )
        self.guide_deconv = nn.Sequential(
            nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=True),
            nn.Conv2d(mid * 4, mid * 2, 3, padding=1),
            nn.BatchNorm2d(mid * 2),
            nn.ReLU(),
            nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=True),
            nn.Conv2d(mid * 2, mid, 3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
        )
        self.guide_decoder = nn.Sequential(nn.Conv2d(mid, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x: Tensor, edge: Tensor) -> Tensor:
        g = self.guide_conv(torch.cat((x, edge), dim=1))
        height, width = int(g.shape[-2]), int(g.shape[-1])
        # The seed upsamples x2 twice (valid when h, w are multiples of 4); resizing to the encoder's sizes is the
        # same there and defined everywhere.
        sizes = [((height + 1) // 2, (width + 1) // 2), (height, width)]
        f = self.guide_conv_feat(g)
        for m in self.guide_deconv:
            f = _bil(f, sizes.pop(0)) if isinstance(m, nn.Upsample) else m(f)
        return self.guide_decoder(g + f)


def gsv_edge_map(logits: Tensor, laplacian: Tensor) -> Tensor:
    """1 where the 3x3 Laplacian of argmax(logits) (as float, zero padding) is non-zero, else 0; [N,1,H,W] fp32."""
    labels = logits.argmax(dim=1, keepdim=True).float()
    edge = F.conv2d(labels, laplacian.float(), padding=1)
    return (edge != 0).float()


class GuidedSpatiallyVaryingConv(nn.Module):
    """GSV refinement: (warped logits S^ [N,19,h,w], low-res BGR-normalised image [N,3,h,w]) -> logits."""

    def __init__(self, num_classes: int = 19, num_filter: int = 32, guide_filter: int = 32) -> None:
        super().__init__()
        self.ideal_dk = IdealDelayKernels(3, 9)
        lap = torch.ones(1, 1, 3, 3)
        lap[0, 0, 1, 1] = -8.0
        self.register_buffer("filter_lapla", lap, persistent=False)  # a plain tensor in the seed
        self.intra_net = IntraNetwork(3, num_filter, num_classes)
        self.guide = GuidingNetwork(num_classes + 1, guide_filter, 9 + 2)

    def weights(self, x: Tensor, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """-> (raw guide weights [N,11,h,w], intra logits A [N,19,h,w], edge map [N,1,h,w])."""
        intra = self.intra_net(image)
        edge = gsv_edge_map(x, self.filter_lapla).to(intra.dtype)
        return self.guide(intra, edge), intra, edge

    def forward(self, x: Tensor, image: Tensor) -> Tensor:
        guide, intra, _ = self.weights(x, image)
        if self.ideal_dk.ideal:
            return guided_sv_conv(x, guide, intra)
        return self.combine_general(x, guide, intra)

    def combine_general(self, x: Tensor, guide: Tensor, intra: Tensor) -> Tensor:
        """The seed's formula with whatever delay filters are loaded: sum_k w_k C_k over [S^, filters(S^), A]."""
        w = guide.float() / (guide.float().sum(dim=1, keepdim=True) + 1e-9)
        cand = self.ideal_dk.candidates(x.float())  # [N,9,K,h,w]
        out = w[:, 0:1] * x.float() + (w[:, 1:10, None] * cand).sum(dim=1) + w[:, 10:11] * intra.float()
        return out.to(x.dtype)


class End2End(nn.Module):
    """The seed's wrapper (model/end2end.py): gives the GSV keys their `grm.` prefix."""

    checkpoint_entry = "state_dict"  # where the seed's gsvnet_*.tar keeps this part

    def __init__(self, grm: GuidedSpatiallyVaryingConv) -> None:
        super().__init__()
        self.grm = grm

    def forward(self, x: Tensor, image: Tensor) -> Tensor:
        return self.grm(x, image)
