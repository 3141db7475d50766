"""Width-reduced skeletons (``clp-gpu shrink --hidden-size``) and how they become runnable."""

from __future__ import annotations

from pathlib import Path

PROJECTION_FILE = "embedding_projection.safetensors"


def is_width_skeleton(student_dir: Path) -> bool:
    """Whether ``student_dir`` is a ``shrink --hidden-size`` skeleton (not runnable as is)."""
    return (Path(student_dir) / PROJECTION_FILE).is_file()


def ensure_runnable(student_dir: Path, options) -> Path:
    """The directory to load the student from."""
    if is_width_skeleton(student_dir):
        from .models import DistillError

        raise DistillError(
            f"student {student_dir} is a `shrink --hidden-size` skeleton, which does not run; "
            "make it runnable first with `python -m clp_gpu.distill.narrow SKELETON OUT`"
        )
    return Path(student_dir)
