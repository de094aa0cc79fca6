"""Which modules an import drags in, seen from a fresh interpreter (this one has them all)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The face models: loading them takes seconds and hundreds of megabytes.
FACE_MODELS = ("dlib", "face_recognition_models")


def loaded_after(imports: str, watched: tuple[str, ...] = FACE_MODELS) -> dict[str, bool]:
    """``import <imports>`` in a new Python at the repository root: which of ``watched``
    are in ``sys.modules`` afterwards."""
    code = f"import sys, {imports}; print(*(name in sys.modules for name in {watched!r}))"
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return dict(zip(watched, (word == "True" for word in output.split()), strict=True))
