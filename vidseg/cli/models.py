"""`vidseg-run --list-models`: every registered model with what it needs to run.

One row per model: whether its weights ship with vidseg or what `--weights` takes (and where the seed publishes
it), its classes, the input size its seed evaluates at, and its methods.
"""

from __future__ import annotations

__all__ = ["print_models"]


def print_models() -> int:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from vidseg.models.registry import build_architecture, list_models

    table = Table(title="vidseg models", title_justify="left", box=box.SIMPLE_HEAD, expand=True)
    table.add_column("model", style="bold", no_wrap=True)
    table.add_column("weights", overflow="fold", ratio=4)
    table.add_column("classes", overflow="fold", ratio=1, min_width=9)
    table.add_column("input", no_wrap=True)
    table.add_column("methods", overflow="fold", ratio=1, min_width=9)
    for name in list_models():
        spec = build_architecture(name).spec
        weights = "built in" if spec.builtin_weights else f"--weights {spec.weights_hint or '(your checkpoint)'}"
        table.add_row(name, weights, f"{spec.num_classes} {spec.palette}",
                      f"{spec.input_size[0]}x{spec.input_size[1]}", ", ".join(spec.methods))
    Console().print(table)
    return 0
