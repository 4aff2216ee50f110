from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alexnet_export.preprocess import (
    center_crop,
    fit_rgb,
    image_files,
    load_rgb,
    preprocess,
    rgb_to_input,
    synthetic_images,
)
from converters.errors import InputError


def test_rgb_to_input_swaps_to_bgr_and_subtracts_the_bgr_mean() -> None:
    rgb = np.zeros((227, 227, 3), np.uint8)
    rgb[0, 0] = (10, 20, 30)  # R, G, B
    out = rgb_to_input(rgb)
    assert out.dtype == np.float32 and out.shape == (227, 227, 3)
    # by hand: B=30-104.007, G=20-116.669, R=10-122.679
    np.testing.assert_allclose(out[0, 0], [-74.007, -96.669, -112.679], rtol=0, atol=1e-4)
    np.testing.assert_allclose(out[1, 1], [-104.007, -116.669, -122.679], rtol=0, atol=1e-4)


def test_center_crop_takes_the_middle_window() -> None:
    image = np.arange(260 * 300).reshape(260, 300)  # H=260, W=300
    crop = center_crop(image)
    assert crop.shape == (227, 227)
    assert crop[0, 0] == image[16, 36]  # (260-227)//2, (300-227)//2
    with pytest.raises(InputError, match=r"expected an image at least 227x227 to crop, received 300x200"):
        center_crop(np.zeros((200, 300)))


def test_fit_resizes_the_shorter_side_to_256_then_crops() -> None:
    rgb = np.zeros((128, 256, 3), np.uint8)  # H=128, W=256 -> 256 x 512
    rgb[:, 128:] = 255  # right half white
    out = fit_rgb(rgb)
    assert out.shape == (227, 227, 3)
    # the resized image is 512 wide: white from x=256, the crop starts at (512-227)//2 = 142
    assert out[100, 256 - 142 - 3].max() == 0 and out[100, 256 - 142 + 3].min() == 255
    assert fit_rgb(rgb, "resize").shape == (227, 227, 3)
    with pytest.raises(InputError, match=r"resize mode: expected one of crop, resize, received 'pad'"):
        fit_rgb(rgb, "pad")


def test_preprocess_reads_grey_and_alpha_images_as_rgb(tmp_path: Path) -> None:
    Image.new("L", (300, 240), color=50).save(tmp_path / "grey.png")
    Image.new("RGBA", (240, 300), color=(200, 100, 0, 10)).save(tmp_path / "alpha.png")
    grey = preprocess(tmp_path / "grey.png")
    np.testing.assert_allclose(grey[5, 5], [50 - 104.007, 50 - 116.669, 50 - 122.679], atol=1e-4)
    alpha = preprocess(tmp_path / "alpha.png")
    np.testing.assert_allclose(alpha[5, 5], [0 - 104.007, 100 - 116.669, 200 - 122.679], atol=1e-4)
    assert load_rgb(tmp_path / "grey.png").shape == (240, 300, 3)


def test_bad_images_and_folders_are_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match=r"broken\.jpg: expected an image Pillow can decode"):
        preprocess(tmp_path / "broken.jpg")
    with pytest.raises(InputError, match=r"missing\.png: no such image file"):
        preprocess(tmp_path / "missing.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: expected image files .*received none"):
        image_files(tmp_path / "empty")
    with pytest.raises(InputError, match=r"nope: expected a folder of images, received nothing"):
        image_files(tmp_path / "nope")


def test_synthetic_images_are_seeded_and_preprocessed() -> None:
    first, again, other = synthetic_images(3, seed=5), synthetic_images(3, seed=5), synthetic_images(3, seed=6)
    assert first.shape == (3, 227, 227, 3) and first.dtype == np.float32
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first.min() >= -122.679 - 1e-3 and first.max() <= 255 - 104.007 + 1e-3


def test_grey_conversion_is_pillows_luma() -> None:
    from PIL import Image

    from alexnet_export.preprocess import to_gray

    rgb = np.random.default_rng(5).integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    pillow = np.asarray(Image.fromarray(rgb).convert("L"))
    assert np.array_equal(to_gray(rgb)[..., 0], pillow)
