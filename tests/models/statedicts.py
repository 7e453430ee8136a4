"""Parser for the seeds' state_dict listings (`shared/reference/*_state_dicts.txt`, copied to tests/models/data/).

The listings give every key and shape each seed's model produces (without the `module.` prefix that the
nn.DataParallel checkpoints carry on disk). Two formats occur, both handled:

    ## camvid-psp18 HR  [evaluation.py:25 PSPNet]                       section header (AR-Seg)
    # unique parameters: 17,461,979   state_dict entries: 156
    feats.conv1.weight        [64, 3, 7, 7]     float32
    final_conv.weight         [12, 256, 1, 1]   float32   [ALIAS of conv_out.conv_out.weight]

    ==== model/pspnet_18.py PSPNet(...): 160 state_dict entries, 14,399,590 parameters ====   (ETC, GSVNet, SANet)
    layer0.0.weight	(64, 3, 7, 7)

Lines that are neither headers nor entries (comments, MAC tables, notes) are skipped. Without a dtype column,
`num_batches_tracked` is int64 and everything else float32.

Usage from a test in tests/models/:  `from statedicts import load_listing, random_state_dict`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["DATA", "Entry", "Section", "parse_listing", "load_listing", "random_state_dict"]

DATA = Path(__file__).with_name("data")

_HEADER_ARSEG = re.compile(r"^##\s+(.*?)\s*$")
_HEADER_EQ = re.compile(r"^====\s+(.*?)\s+====\s*$")
_ENTRY = re.compile(
    r"^(?P<key>[A-Za-z_][\w.]*)\s+[\[(](?P<shape>[\d,\s]*)[\])]\s*(?P<dtype>[a-z]+\d*)?\s*"
    r"(?:\[ALIAS of (?P<alias>[\w.]+)\])?\s*$"
)
_COUNT_ARSEG = re.compile(r"unique parameters:\s*([\d,]+)\s+state_dict entries:\s*(\d+)")
_COUNT_EQ = re.compile(r"(\d+) state_dict entries, ([\d,]+) parameters")
_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class Entry:
    key: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    alias_of: str | None = None


@dataclass
class Section:
    title: str  # the header text; AR-Seg's without the trailing "[file:line Class]"
    header: str
    entries: list[Entry] = field(default_factory=list)
    params: int | None = None  # unique parameters, as the listing states
    num_entries: int | None = None  # state_dict entries, as the listing states

    @property
    def keys(self) -> list[str]:
        return [e.key for e in self.entries]

    def counted_params(self) -> int:
        """Parameters summed over the entries: aliases and BN buffers excluded."""
        return sum(
            torch.Size(e.shape).numel()
            for e in self.entries
            if e.alias_of is None and not e.key.endswith(_BUFFER_SUFFIXES)
        )


def _dtype(name: str | None, key: str) -> torch.dtype:
    if name:
        return getattr(torch, name)
    return torch.int64 if key.endswith("num_batches_tracked") else torch.float32


def parse_listing(path: str | Path) -> dict[str, Section]:
    """Sections of a listing, keyed by title, in file order."""
    sections: dict[str, Section] = {}
    current: Section | None = None
    for line in Path(path).read_text().splitlines():
        header = _HEADER_ARSEG.match(line) or _HEADER_EQ.match(line)
        if header:
            text = header.group(1)
            title = re.sub(r"\s+\[[^\]]*\].*$", "", text) if line.startswith("##") else text
            current = Section(title=title, header=text)
            counts = _COUNT_EQ.search(text)
            if counts:
                current.num_entries, current.params = int(counts.group(1)), int(counts.group(2).replace(",", ""))
            sections[title] = current
            continue
        if current is None:
            continue
        counts = _COUNT_ARSEG.search(line)
        if counts:
            current.params, current.num_entries = int(counts.group(1).replace(",", "")), int(counts.group(2))
            continue
        entry = _ENTRY.match(line)
        if entry:
            shape = tuple(int(s) for s in entry.group("shape").replace(" ", "").split(",") if s)
            current.entries.append(
                Entry(entry.group("key"), shape, _dtype(entry.group("dtype"), entry.group("key")), entry.group("alias"))
            )
    return {t: s for t, s in sections.items() if s.entries}


def load_listing(seed: str) -> dict[str, Section]:
    """`load_listing("arseg")` parses tests/models/data/arseg_state_dicts.txt."""
    return parse_listing(DATA / f"{seed}_state_dicts.txt")


def random_state_dict(section: Section, *, prefix: str = "module.", seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict with exactly the listing's keys, shapes and dtypes (random, well-scaled values; BN variances
    positive; alias keys holding the very tensor of their canonical key), each key prefixed as on disk."""
    gen = torch.Generator().manual_seed(seed)
    values: dict[str, torch.Tensor] = {}
    for e in section.entries:
        if e.alias_of is not None:
            continue
        if e.dtype == torch.int64:
            t = torch.randint(0, 1000, e.shape, generator=gen)
        elif e.key.endswith("running_var"):
            t = torch.rand(e.shape, generator=gen) + 0.5
        elif e.key.endswith("bn.weight") or len(e.shape) == 1 and e.key.endswith("weight"):
            t = torch.rand(e.shape, generator=gen) + 0.5  # BN / PReLU scales
        else:
            fan_in = max(1, torch.Size(e.shape[1:]).numel()) if len(e.shape) > 1 else 1
            t = torch.randn(e.shape, generator=gen) / fan_in**0.5
            if len(e.shape) <= 1:
                t = t * 0.1
        values[e.key] = t.to(e.dtype)
    out = {}
    for e in section.entries:
        out[prefix + e.key] = values[e.alias_of] if e.alias_of is not None else values[e.key]
    return out
