"""Image preprocessing for each architecture's input (Caffe's convention for BVLC AlexNet), separate from any model.

What the weights expect (Caffe's ``deploy.prototxt`` and its ImageNet mean; see ``shared/DESIGN.md``):
227x227 pixels, channels in **BGR** order, values 0-255 as float32, minus the per-channel mean
(B, G, R) = (104.007, 116.669, 122.679). The often-copied AlexNet script gets this wrong three ways
(no mean on one sample, a scalar mean on another, and an RGB->BGR swap that loses the red channel);
the tests here check each step against hand-computed pixels.

Steps of :func:`preprocess`: check the size from the header (at most 40 M pixels, aspect ratio at most
20:1), decode with Pillow and convert to RGB (palette, grey and alpha images included; 16-bit greys
scaled by 65535, float greys taken as [0, 1]), resize so the shorter side is 256 (bilinear), centre-crop
227x227, reverse the channels to BGR, subtract the mean.
``mode="resize"`` resizes straight to 227x227 instead (no crop).

Other architectures state their own input (:class:`converters.arch.InputSpec`): size, RGB/BGR or grey
(Pillow's ITU-R 601-2 luma, ``L``), a scale (1/255 for [0, 1] inputs) and a mean; every function here
takes it as ``spec`` (default: BVLC AlexNet's).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from converters.arch import PRESETS, InputSpec
from converters.errors import InputError

BVLC_INPUT: InputSpec = PRESETS["bvlc-alexnet"].input
BGR_MEAN: tuple[float, ...] = BVLC_INPUT.mean
INPUT_SIZE = BVLC_INPUT.height
RESIZE_SHORTER = 256
MODES: tuple[str, ...] = ("crop", "resize")
MAX_PIXELS = 40_000_000  # checked from the header before decoding (Pillow's own bomb limit is ~89 M)
MAX_ASPECT = 20  # a 1x30000 strip is not a photograph; cropping it would allocate a 30000x30000 square
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to uint8 RGB ``(H, W, 3)``.

    Raises:
        InputError: the file is missing or is not an image Pillow can decode.

    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:  # lazy: only the header is read here
            _check_size(path, image.size)
            return _to_rgb(path, image)
    except FileNotFoundError:
        raise InputError(f"{path}: no such image file") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path}: expected at most {MAX_PIXELS:,} pixels, received a larger image ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: expected an image Pillow can decode, received unreadable data ({exc})") from None


def _check_size(path: str | os.PathLike[str], size: tuple[int, int]) -> None:
    """Refuse, before decoding, pictures too large to decode safely or too thin to crop to a network input."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise InputError(f"{path}: expected at most {MAX_PIXELS:,} pixels, received {width}x{height}")
    if max(width, height) > MAX_ASPECT * max(min(width, height), 1):
        raise InputError(f"{path}: expected an aspect ratio of at most {MAX_ASPECT}:1, received {width}x{height}")


def _to_rgb(path: str | os.PathLike[str], image: Any) -> np.ndarray:
    """uint8 RGB from any mode: 16-bit and 32-bit integer greys scaled by their range, float greys as [0, 1]."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        grey = np.clip(np.rint(values / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise InputError(
                f"{path}: expected a float image with values in [0, 1], received values in "
                f"[{np.nanmin(values):g}, {np.nanmax(values):g}]"
            )
        grey = np.rint(values * 255.0).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a uint8 RGB array with Pillow (antialiased when shrinking)."""
    from PIL import Image

    resized = Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def center_crop(array: np.ndarray, size: int | tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """The central ``size`` window (``(height, width)`` or a square side; top-left corner rounded down)."""
    want_h, want_w = (size, size) if isinstance(size, int) else size
    height, width = array.shape[:2]
    if height < want_h or width < want_w:
        raise InputError(f"expected an image at least {want_w}x{want_h} to crop, received {width}x{height}")
    top, left = (height - want_h) // 2, (width - want_w) // 2
    return array[top : top + want_h, left : left + want_w]


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """Pillow's ``L`` conversion of uint8 RGB (ITU-R 601-2 luma, rounded as Pillow rounds), ``(..., 1)``."""
    weights = np.asarray([19595, 38470, 7471], dtype=np.uint32)  # 0.299, 0.587, 0.114 in 1/65536
    luma = (rgb.astype(np.uint32) * weights).sum(axis=-1) + 0x8000
    return np.asarray((luma >> 16).astype(np.uint8)[..., None])


def rgb_to_input(rgb: np.ndarray, spec: InputSpec = BVLC_INPUT) -> np.ndarray:
    """uint8 RGB ``(..., H, W, 3)`` (or already grey ``(..., H, W, 1)``) to the model input, float32.

    Channels reordered (BGR) or reduced to grey as ``spec`` says, times ``spec.scale``, minus ``spec.mean``.
    """
    if spec.channel_order == "BGR":
        pixels = rgb[..., ::-1]
    elif spec.channel_order == "GRAY" and rgb.shape[-1] == 3:
        pixels = to_gray(rgb)
    else:
        pixels = rgb
    out = pixels.astype(np.float32)
    if spec.scale != 1.0:
        out *= np.float32(spec.scale)
    if spec.mean:
        out -= np.asarray(spec.mean, dtype=np.float32)
    return out


def input_to_rgb(images: np.ndarray, spec: InputSpec = BVLC_INPUT) -> np.ndarray:
    """The inverse of :func:`rgb_to_input`: model inputs back to uint8 pixels (rounded, clipped to 0..255).

    Colour networks give RGB; grey ones give one channel. Feeds artifacts with embedded preprocessing
    the same pictures as the float ones.
    """
    values = (np.asarray(images, dtype=np.float64) + np.asarray(spec.means)) / spec.scale
    pixels = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pixels[..., ::-1] if spec.channel_order == "BGR" else pixels)


def fit_rgb(rgb: np.ndarray, mode: str = "crop", spec: InputSpec = BVLC_INPUT) -> np.ndarray:
    """Resize (and crop) an RGB image to the input size the way :func:`preprocess` does."""
    if mode not in MODES:
        raise InputError(f"resize mode: expected one of {', '.join(MODES)}, received {mode!r}")
    if mode == "resize":
        return resize_rgb(rgb, spec.width, spec.height)
    height, width = rgb.shape[:2]
    shorter = max(spec.resize_shorter, spec.height, spec.width)
    scale = shorter / min(height, width)
    size = (max(shorter, round(width * scale)), max(shorter, round(height * scale)))
    return center_crop(resize_rgb(rgb, *size), (spec.height, spec.width))


def preprocess(path: str | os.PathLike[str], mode: str | None = None, spec: InputSpec = BVLC_INPUT) -> np.ndarray:
    """One image file as a model input: float32 ``(H, W, C)`` as ``spec`` says (mode: ``spec.fit`` by default)."""
    return rgb_to_input(fit_rgb(load_rgb(path), mode or spec.fit, spec), spec)


def preprocess_batch(
    paths: Sequence[str | os.PathLike[str]], mode: str | None = None, spec: InputSpec = BVLC_INPUT
) -> np.ndarray:
    """Several image files as one float32 NHWC batch."""
    return np.stack([preprocess(path, mode, spec) for path in paths]).astype(np.float32, copy=False)


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


def synthetic_images(count: int, seed: int = 0, spec: InputSpec = BVLC_INPUT) -> np.ndarray:
    """Seeded natural-ish images (smooth gradients plus noise) already preprocessed, float32 NHWC.

    Used when no image folder is given (calibration, verification); each goes through
    :func:`rgb_to_input`, so only the pixels are synthetic, not the preprocessing. For BVLC AlexNet's
    input the values are those of earlier releases.
    """
    rng = np.random.default_rng(seed)
    rows, cols = spec.height, spec.width
    grid = np.linspace(0.0, 1.0, rows)
    batch = []
    for _ in range(count):
        colours = rng.uniform(0, 255, size=(2, 3))
        mix = np.outer(grid, rng.uniform(0.2, 1.0, cols))[..., None]
        rgb = colours[0] * (1 - mix) + colours[1] * mix + rng.normal(0, 25, size=(rows, cols, 3))
        batch.append(rgb_to_input(np.clip(rgb, 0, 255).astype(np.uint8), spec))
    return np.stack(batch)
