"""Stimulus and brain-map images."""

import io

import numpy as np
from PIL import Image

from psmd_app import media

AFFINE = np.array([[2.0, 0, 0, -98], [0, 2.0, 0, -134], [0, 0, 2.0, -72], [0, 0, 0, 1]])


def test_stimulus_png_keeps_pixels():
    image = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    png = Image.open(io.BytesIO(media.stimulus_png(image, size=64)))
    assert png.size == (64, 64)
    pixels = np.asarray(png)
    assert pixels[0, 0] == image[0, 0] and pixels[63, 63] == image[7, 7]
    assert pixels[9, 17] == image[1, 2]  # 8 screen pixels per image pixel


def test_world_to_voxel_inverts_the_affine():
    ijk = np.array([[49, 58, 36], [0, 0, 0]])
    mm = (np.c_[ijk, np.ones(2)] @ AFFINE.T)[:, :3]
    np.testing.assert_array_equal(media.world_to_voxel(mm, AFFINE), ijk)


def test_brain_map_marks_the_selected_voxel():
    data = np.zeros((20, 24, 18), dtype=np.float32)
    data[2:18, 2:22, 2:16] = 100.0
    coords = np.array([[-78.0, -110.0, -52.0], [-70.0, -110.0, -52.0]])
    png = media.brain_map_png(
        coords, coords[0], colour="#00ff00", template=(data, AFFINE), scale=3
    )
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    # Three panels of 24x18, 20x18 and 20x24 voxels side by side, 3 px each.
    assert picture.shape == (24 * 3, (24 + 20 + 20) * 3 + 8, 3)
    pink = (np.abs(picture - [0xE7, 0x29, 0x8A]).sum(axis=2) < 30).sum()
    green = (np.abs(picture - [0, 255, 0]).sum(axis=2) < 30).sum()
    assert pink > 50 and green > 20


def test_urls_quote_names():
    assert media.stimulus_url("a b", 3) == "/psmd/stimulus/a%20b/3.png"
    assert media.brain_url("fmri-sim", 1, "y", 7) == "/psmd/brain/fmri-sim/1/y/7.png"
