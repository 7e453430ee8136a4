"""ResNet-18 trunks in the layouts the seeds use (no torchvision).

Written from the seeds' digests (`shared/reference/arseg.md` §1.2, §1.4, §1.5; `etc.md` §1), not copied. Module
names mirror the seeds' so that state_dict keys match their checkpoints. One `ResNet18` class covers every
variant; a `ResNetLayout` says where the trunk is strided or dilated, per block and per 3x3 conv:

| layout           | seed (file)                             | stem      | layer3 d(conv1,conv2) | layer4       | OS |
|------------------|-----------------------------------------|-----------|-----------------------|--------------|----|
| PLAIN            | AR-Seg BiSeNet Resnet18 (bisenet.py)    | conv1/bn1 | stride 2, d 1         | stride 2     | 32 |
| ARSEG_EXTRACTORS | AR-Seg CamVid PSPNet (extractors.py)    | conv1/bn1 | (1,1), (2,2)          | (1,1), (4,4) | 8  |
| ARSEG_SEMSEG     | AR-Seg Cityscapes (pspnet_semseg.py)    | layer0    | (1,2), (2,2)          | (1,4), (4,4) | 8  |
| ETC              | ETC PSPNet-18 (pspnet_18.py)            | layer0    | (1,2), (1,2)          | (1,4), (1,4) | 8  |

(dilations listed for block 0, block 1 of the layer; the dilated layouts run layer3 and layer4 at stride 1)

The dilated layouts differ only in where dilation sits (AR-Seg's extractors leave block 0 undilated; the semseg
surgery dilates only `conv2`, and on top of extractors' dilated block 1 in AR-Seg but on a plain ResNet in ETC),
which matters for reproducing the released checkpoints but not for shapes, parameters or MACs. Padding always
equals dilation, so a stride-1 3x3 keeps the size and every stride-2 step maps n -> ceil(n / 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

__all__ = [
    "BasicBlock",
    "ResNetLayout",
    "ResNet18",
    "PLAIN",
    "ARSEG_EXTRACTORS",
    "ARSEG_SEMSEG",
    "ETC",
    "stride2_size",
]

Dilations = tuple[tuple[int, int], tuple[int, int]]  # (conv1, conv2) dilation of block 0 and block 1


def scaled(channels: int, width: float) -> int:
    """Channel count of a width-multiplied network (multiples of 8, at least 8); width 1 keeps the seed's."""
    return channels if width == 1.0 else max(8, int(round(channels * width / 8)) * 8)


def stride2_size(n: int, steps: int = 1) -> int:
    """Size after `steps` stride-2 convs/pools with 'same' padding (7x7 p3, 3x3 p1, 3x3 maxpool p1): ceil(n/2)."""
    for _ in range(steps):
        n = (n + 1) // 2
    return n


@dataclass(frozen=True)
class ResNetLayout:
    """Where a ResNet-18 is strided and dilated; see the module docstring for the seeds' layouts."""

    name: str
    stem: str  # "flat": conv1, bn1, relu, maxpool attributes; "layer0": Sequential(conv1, bn1, relu, maxpool)
    strides: tuple[int, int, int, int]  # layer1..layer4
    dilations: tuple[Dilations, Dilations, Dilations, Dilations]  # layer1..layer4

    @property
    def output_stride(self) -> int:
        out = 4
        for s in self.strides:
            out *= s
        return out


_UNDILATED: Dilations = ((1, 1), (1, 1))

PLAIN = ResNetLayout("plain", "flat", (1, 2, 2, 2), (_UNDILATED,) * 4)
ARSEG_EXTRACTORS = ResNetLayout(
    "arseg-extractors", "flat", (1, 2, 1, 1), (_UNDILATED, _UNDILATED, ((1, 1), (2, 2)), ((1, 1), (4, 4)))
)
ARSEG_SEMSEG = ResNetLayout(
    "arseg-semseg", "layer0", (1, 2, 1, 1), (_UNDILATED, _UNDILATED, ((1, 2), (2, 2)), ((1, 4), (4, 4)))
)
ETC = ResNetLayout("etc", "layer0", (1, 2, 1, 1), (_UNDILATED, _UNDILATED, ((1, 2), (1, 2)), ((1, 4), (1, 4))))


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """conv3x3(stride, d1)-BN-ReLU-conv3x3(d2)-BN + shortcut, ReLU. Shortcut: 1x1 conv(stride)+BN when needed."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride, dilation[0])
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = _conv3x3(cout, cout, 1, dilation[1])
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class ResNet18(nn.Module):
    """ResNet-18 trunk (BasicBlock [2,2,2,2], widths 64/128/256/512, no fc) in one of the seeds' layouts.

    forward(x) -> (layer2, layer3, layer4) outputs: 128, 256, 512 channels. With PLAIN these are the strides
    8/16/32 features BiSeNet calls feat8/feat16/feat32; the dilated layouts keep layer3 and layer4 at stride 8.
    """

    def __init__(self, layout: ResNetLayout = PLAIN, *, width: float = 1.0) -> None:
        super().__init__()
        self.layout = layout
        widths = tuple(scaled(c, width) for c in (64, 128, 256, 512))  # width < 1: vidseg's small demo nets
        self.widths = widths
        conv1 = nn.Conv2d(3, widths[0], 7, stride=2, padding=3, bias=False)
        bn1 = nn.BatchNorm2d(widths[0])
        if layout.stem == "layer0":
            self.layer0 = nn.Sequential(conv1, bn1, nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))
        elif layout.stem == "flat":
            self.conv1, self.bn1 = conv1, bn1
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            raise ValueError(f"unknown ResNet stem {layout.stem!r}")
        cin = widths[0]
        for i, (cout, stride, dil) in enumerate(zip(widths, layout.strides, layout.dilations, strict=True)):
            blocks = [BasicBlock(cin, cout, stride, dil[0]), BasicBlock(cout, cout, 1, dil[1])]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            cin = cout

    def stem(self, x: Tensor) -> Tensor:
        if self.layout.stem == "layer0":
            return self.layer0(x)
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.layer1(self.stem(x))
        c2 = self.layer2(x)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c2, c3, c4

    def output_sizes(self, height: int, width: int) -> tuple[tuple[int, int], ...]:
        """(H, W) of the layer2, layer3, layer4 outputs for an input of height x width."""
        sizes = []
        h, w = stride2_size(height, 2), stride2_size(width, 2)  # conv1 and maxpool
        for i, stride in enumerate(self.layout.strides):
            if stride == 2:
                h, w = stride2_size(h), stride2_size(w)
            if i >= 1:
                sizes.append((h, w))
        return tuple(sizes)
