"""PNG images served by URL: stimuli and brain maps.

Images are rendered on the server with Pillow and sent as files from Flask
routes (see :func:`register_routes`), never as base64 inside a Dash store.
Brain maps are three orthogonal slices of nilearn's MNI152 template (2 mm)
through a voxel, with the subject's voxels near each slice drawn on top.
"""

from __future__ import annotations

import functools
import io
import logging
import threading
from collections.abc import Callable
from urllib.parse import quote

import numpy as np
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)

STIMULUS_SIZE = 72
BRAIN_SCALE = 2
_TEMPLATE_LOCK = threading.Lock()


def png_bytes(image: Image.Image) -> bytes:
    """Encode a Pillow image as PNG."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def stimulus_png(image: np.ndarray, size: int = STIMULUS_SIZE) -> bytes:
    """Render one stimulus image as a PNG, scaled up with crisp pixels.

    Parameters
    ----------
    image : ndarray of uint8 of shape (H, W) or (H, W, 3)
    size : int, default=72
        Width of the output in pixels (height keeps the aspect ratio).

    Returns
    -------
    bytes
    """
    array = np.asarray(image)
    if array.dtype != np.uint8:
        top = float(array.max()) or 1.0
        array = np.clip(array / top * 255.0, 0, 255).astype(np.uint8)
    mode = "L" if array.ndim == 2 else "RGB"
    picture = Image.fromarray(array, mode=mode)
    height = max(1, round(size * array.shape[0] / array.shape[1]))
    return png_bytes(picture.resize((size, height), Image.Resampling.NEAREST))


@functools.lru_cache(maxsize=1)
def mni_template() -> tuple[np.ndarray, np.ndarray]:
    """nilearn's MNI152 template at 2 mm: (data of shape (99, 117, 95), affine)."""
    with _TEMPLATE_LOCK:
        from nilearn import datasets

        image = datasets.load_mni152_template(resolution=2)
        data = np.asarray(image.get_fdata(), dtype=np.float32)
        logger.info("loaded the MNI152 template %s", data.shape)
        return data, np.asarray(image.affine, dtype=np.float64)


def world_to_voxel(coords: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Millimetre coordinates of shape (n, 3) to integer voxel indices (n, 3)."""
    coords = np.atleast_2d(np.asarray(coords, dtype=np.float64))
    homogeneous = np.c_[coords, np.ones(len(coords))]
    ijk = homogeneous @ np.linalg.inv(affine).T
    return np.rint(ijk[:, :3]).astype(int)


def _grey(plane: np.ndarray, vmax: float) -> np.ndarray:
    return (np.clip(plane / vmax, 0.0, 1.0) * 235).astype(np.uint8)


def brain_map_png(
    coords: np.ndarray,
    selected: np.ndarray,
    *,
    colour: str = "#2166ac",
    template: tuple[np.ndarray, np.ndarray] | None = None,
    scale: int = BRAIN_SCALE,
) -> bytes:
    """Draw sagittal, coronal and axial slices through a selected voxel.

    Parameters
    ----------
    coords : ndarray of shape (n_voxels, 3)
        MNI millimetres of all of a subject's voxels (drawn where they lie
        within one voxel of a slice).
    selected : ndarray of shape (3,)
        MNI millimetres of the voxel to mark (slices go through it).
    colour : str, default="#2166ac"
        Colour of the subject's voxels.
    template : (data, affine) or None
        Background volume; default is :func:`mni_template`.
    scale : int, default=2
        Screen pixels per voxel.

    Returns
    -------
    bytes
        A PNG of the three panels side by side.
    """
    data, affine = template if template is not None else mni_template()
    vmax = float(np.percentile(data[data > 0], 99.5)) if (data > 0).any() else 1.0
    shape = np.array(data.shape)
    centre = np.clip(world_to_voxel(selected, affine)[0], 0, shape - 1)
    voxels = world_to_voxel(coords, affine) if len(coords) else np.zeros((0, 3), int)
    panels = []
    # (fixed axis, horizontal axis, vertical axis) for sagittal, coronal, axial.
    for fixed, across, up in ((0, 1, 2), (1, 0, 2), (2, 0, 1)):
        plane = np.take(data, centre[fixed], axis=fixed)
        plane = plane if across < up else plane.T
        rows = _grey(plane.T[::-1], vmax)
        picture = Image.fromarray(rows, mode="L").convert("RGB")
        picture = picture.resize(
            (picture.width * scale, picture.height * scale), Image.Resampling.BILINEAR
        )
        draw = ImageDraw.Draw(picture)
        height = shape[up]

        def to_px(i, j, height=height):
            return (i + 0.5) * scale, (height - 1 - j + 0.5) * scale

        near = np.abs(voxels[:, fixed] - centre[fixed]) <= 1
        for voxel in voxels[near]:
            x, y = to_px(voxel[across], voxel[up])
            r = 0.9 * scale
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        x, y = to_px(centre[across], centre[up])
        draw.line((x, 0, x, picture.height), fill="#e7298a", width=1)
        draw.line((0, y, picture.width, y), fill="#e7298a", width=1)
        r = 2.5 * scale
        draw.ellipse((x - r, y - r, x + r, y + r), outline="#e7298a", width=2)
        mm = affine[fixed, fixed] * centre[fixed] + affine[fixed, 3]
        draw.text((4, 2), f"{'xyz'[fixed]} = {mm:.0f} mm", fill="#ffffff")
        panels.append(picture)
    gap = 4
    width = sum(p.width for p in panels) + gap * (len(panels) - 1)
    canvas = Image.new("RGB", (width, max(p.height for p in panels)), "white")
    left = 0
    for picture in panels:
        canvas.paste(picture, (left, canvas.height - picture.height))
        left += picture.width + gap
    return png_bytes(canvas)


def stimulus_url(dataset: str, index: int) -> str:
    """Address of one stimulus image."""
    return f"/psmd/stimulus/{quote(dataset, safe='')}/{int(index)}.png"


def brain_url(dataset: str, view_index: int, side: str, unit: int) -> str:
    """Address of the brain map of one unit (``unit``: original column index)."""
    return (
        f"/psmd/brain/{quote(dataset, safe='')}/{int(view_index)}/{side}/"
        f"{int(unit)}.png"
    )


def register_routes(server, sample_for: Callable[[str], object]) -> None:
    """Add the image routes to a Flask server.

    Parameters
    ----------
    server : flask.Flask
    sample_for : callable
        Dataset name to its loaded sample; raises ``KeyError`` when unknown.
    """
    from flask import Response, abort

    @functools.lru_cache(maxsize=4096)
    def stimulus(dataset: str, index: int) -> bytes:
        images = sample_for(dataset).images
        if images is None or not 0 <= index < len(images):
            raise KeyError(index)
        return stimulus_png(images[index])

    @functools.lru_cache(maxsize=512)
    def brain(dataset: str, view_index: int, side: str, unit: int) -> bytes:
        sample = sample_for(dataset)
        view = list(sample.views.values())[view_index]
        coords = getattr(view, f"coords_{side}")
        if coords is None or not 0 <= unit < len(coords):
            raise KeyError(unit)
        colour = "#2166ac" if side == "x" else "#d6604d"
        return brain_map_png(coords, coords[unit], colour=colour)

    def send(render, *args) -> Response:
        try:
            body = render(*args)
        except (KeyError, IndexError):
            abort(404)
        response = Response(body, mimetype="image/png")
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    @server.route("/psmd/stimulus/<dataset>/<int:index>.png")
    def psmd_stimulus(dataset: str, index: int):
        return send(stimulus, dataset, index)

    @server.route("/psmd/brain/<dataset>/<int:view_index>/<side>/<int:unit>.png")
    def psmd_brain(dataset: str, view_index: int, side: str, unit: int):
        if side not in ("x", "y"):
            abort(404)
        return send(brain, dataset, view_index, side, unit)
