"""The bundled sample images: the photos that ship inside scikit-image."""

from __future__ import annotations

from pathlib import Path


def sample_image_dir() -> Path:
    """Folder of scikit-image's bundled sample photos (about 30 PNG/JPEG files, no download)."""
    import skimage.data

    return Path(skimage.data.__file__).parent
