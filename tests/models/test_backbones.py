"""ResNet-18 layouts: where each seed strides and dilates, output sizes, and key names against the listings."""

from __future__ import annotations

import pytest
import torch
from statedicts import load_listing

from vidseg.models.backbones import ARSEG_EXTRACTORS, ARSEG_SEMSEG, ETC, PLAIN, ResNet18, stride2_size


def _dilations(net: ResNet18, layer: str) -> list[tuple[int, int]]:
    blocks = getattr(net, layer)
    return [(b.conv1.dilation[0], b.conv2.dilation[0]) for b in blocks]


@pytest.mark.parametrize(
    ("layout", "layer3", "layer4"),
    [
        (PLAIN, [(1, 1), (1, 1)], [(1, 1), (1, 1)]),
        # AR-Seg extractors.ResNet: dilation only on blocks 1..n-1 (arseg.md §1.2)
        (ARSEG_EXTRACTORS, [(1, 1), (2, 2)], [(1, 1), (4, 4)]),
        # AR-Seg pspnet_semseg: conv2 of block 0 dilated too, on top of extractors' dilated block 1 (§1.4)
        (ARSEG_SEMSEG, [(1, 2), (2, 2)], [(1, 4), (4, 4)]),
        # ETC: only conv2 of every block dilated, on a plain ResNet (etc.md §1)
        (ETC, [(1, 2), (1, 2)], [(1, 4), (1, 4)]),
    ],
)
def test_dilation_tables(layout, layer3, layer4):
    net = ResNet18(layout)
    assert _dilations(net, "layer3") == layer3
    assert _dilations(net, "layer4") == layer4
    assert _dilations(net, "layer1") == _dilations(net, "layer2") == [(1, 1), (1, 1)]
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d) and module.kernel_size == (3, 3):
            assert module.padding == module.dilation
    strided = 2 if layout is PLAIN else 1
    assert net.layer3[0].conv1.stride == (strided, strided)
    assert net.layer3[0].downsample[0].stride == (strided, strided)
    assert net.layer4[0].conv1.stride == (strided, strided)


@pytest.mark.parametrize("layout", [PLAIN, ARSEG_EXTRACTORS, ARSEG_SEMSEG, ETC])
def test_output_sizes_and_channels(layout):
    net = ResNet18(layout).eval()
    h, w = 37, 50  # odd sizes: every stride-2 step is ceil(n/2)
    with torch.no_grad():
        outs = net(torch.randn(1, 3, h, w))
    assert [o.shape[1] for o in outs] == [128, 256, 512]
    assert [tuple(o.shape[-2:]) for o in outs] == list(net.output_sizes(h, w))
    os8 = (stride2_size(h, 3), stride2_size(w, 3))
    assert tuple(outs[0].shape[-2:]) == os8 == (5, 7)
    expected_last = (stride2_size(h, 5), stride2_size(w, 5)) if layout is PLAIN else os8
    assert tuple(outs[2].shape[-2:]) == expected_last
    assert layout.output_stride == (32 if layout is PLAIN else 8)


def test_key_names_match_the_seeds():
    arseg = load_listing("arseg")
    etc = next(s for t, s in load_listing("etc").items() if "pspnet_18" in t)

    def under(section, prefix: str) -> set[str]:
        return {k[len(prefix) :] for k in section.keys if k.startswith(prefix)}

    assert set(ResNet18(ARSEG_EXTRACTORS).state_dict()) == under(arseg["camvid-psp18 HR"], "feats.")
    assert set(ResNet18(PLAIN).state_dict()) == under(arseg["camvid-bise18 HR"], "cp.resnet.")
    trunk = {k for k in etc.keys if k.split(".")[0] in {f"layer{i}" for i in range(5)}}
    assert set(ResNet18(ETC).state_dict()) == trunk
    assert set(ResNet18(ARSEG_SEMSEG).state_dict()) == trunk
