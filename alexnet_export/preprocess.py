"""Caffe-convention image preprocessing for BVLC AlexNet, separate from any model.

What the weights expect (Caffe's ``deploy.prototxt`` and its ImageNet mean; see ``shared/DESIGN.md``):
227x227 pixels, channels in **BGR** order, values 0-255 as float32, minus the per-channel mean
(B, G, R) = (104.007, 116.669, 122.679). The often-copied AlexNet script gets this wrong three ways
(no mean on one sample, a scalar mean on another, and an RGB->BGR swap that loses the red channel);
the tests here check each step against hand-computed pixels.

Steps of :func:`preprocess`: decode with Pillow and convert to RGB (palette, grey and alpha images
included), resize so the shorter side is 256 (bilinear), centre-crop 227x227, reverse the channels to
BGR, subtract the mean. ``mode="resize"`` resizes straight to 227x227 instead (no crop).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from converters.errors import InputError
from converters.spec import BGR_MEAN, INPUT_SIZE

RESIZE_SHORTER = 256
MODES: tuple[str, ...] = ("crop", "resize")
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to uint8 RGB ``(H, W, 3)``.

    Raises:
        InputError: the file is missing or is not an image Pillow can decode.

    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(f"{path}: no such image file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: expected an image Pillow can decode, received unreadable data ({exc})") from None


def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a uint8 RGB array with Pillow (antialiased when shrinking)."""
    from PIL import Image

    resized = Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def center_crop(array: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """The central ``size`` x ``size`` window (top-left corner rounded down)."""
    height, width = array.shape[:2]
    if height < size or width < size:
        raise InputError(f"expected an image at least {size}x{size} to crop, received {width}x{height}")
    top, left = (height - size) // 2, (width - size) // 2
    return array[top : top + size, left : left + size]


def rgb_to_input(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(227, 227, 3)`` to the model input: float32 BGR minus the BGR mean."""
    bgr = rgb[..., ::-1].astype(np.float32)
    return bgr - np.asarray(BGR_MEAN, dtype=np.float32)


def input_to_rgb(images: np.ndarray) -> np.ndarray:
    """The inverse of :func:`rgb_to_input`: model inputs back to uint8 RGB (rounded, clipped to 0..255).

    Feeds artifacts with embedded preprocessing the same pictures as the float ones.
    """
    bgr = np.asarray(images, dtype=np.float64) + np.asarray(BGR_MEAN)
    return np.ascontiguousarray(np.clip(np.rint(bgr), 0, 255).astype(np.uint8)[..., ::-1])


def fit_rgb(rgb: np.ndarray, mode: str = "crop") -> np.ndarray:
    """Resize (and crop) an RGB image to 227x227 the way :func:`preprocess` does."""
    if mode not in MODES:
        raise InputError(f"resize mode: expected one of {', '.join(MODES)}, received {mode!r}")
    if mode == "resize":
        return resize_rgb(rgb, INPUT_SIZE, INPUT_SIZE)
    height, width = rgb.shape[:2]
    scale = RESIZE_SHORTER / min(height, width)
    size = (max(RESIZE_SHORTER, round(width * scale)), max(RESIZE_SHORTER, round(height * scale)))
    return center_crop(resize_rgb(rgb, *size))


def preprocess(path: str | os.PathLike[str], mode: str = "crop") -> np.ndarray:
    """One image file as a model input: float32 ``(227, 227, 3)``, BGR, mean-subtracted."""
    return rgb_to_input(fit_rgb(load_rgb(path), mode))


def preprocess_batch(paths: Sequence[str | os.PathLike[str]], mode: str = "crop") -> np.ndarray:
    """Several image files as one float32 NHWC batch."""
    return np.stack([preprocess(path, mode) for path in paths]).astype(np.float32, copy=False)


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files directly in ``folder``, sorted by name.

    Raises:
        InputError: ``folder`` is not a directory or holds no image files.

    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: expected a folder of images, received {'a file' if root.exists() else 'nothing'}")
    found = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise InputError(f"{root}: expected image files ({', '.join(IMAGE_SUFFIXES)}), received none")
    return found


def synthetic_images(count: int, seed: int = 0) -> np.ndarray:
    """Seeded natural-ish images (smooth gradients plus noise) already preprocessed, float32 NHWC.

    Used when no image folder is given (calibration, verification); each goes through
    :func:`rgb_to_input`, so only the pixels are synthetic, not the preprocessing.
    """
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 1.0, INPUT_SIZE)
    batch = []
    for _ in range(count):
        colours = rng.uniform(0, 255, size=(2, 3))
        mix = np.outer(grid, rng.uniform(0.2, 1.0, INPUT_SIZE))[..., None]
        rgb = colours[0] * (1 - mix) + colours[1] * mix + rng.normal(0, 25, size=(INPUT_SIZE, INPUT_SIZE, 3))
        batch.append(rgb_to_input(np.clip(rgb, 0, 255).astype(np.uint8)))
    return np.stack(batch)
