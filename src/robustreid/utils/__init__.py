"""Small helpers shared by every package: atomic file writes, seeding."""

from .io import append_line_atomic, atomic_write_bytes, atomic_write_text, atomic_path
from .seed import derive_seed, seed_everything

__all__ = ["append_line_atomic", "atomic_write_bytes", "atomic_write_text", "atomic_path", "derive_seed", "seed_everything"]
