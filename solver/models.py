"""Model mode: activations of a chosen layer of two PyTorch models.

Two networks see the same stimulus images; the activations of one layer of
each become the stimuli × units matrices X and Y (units = channels).

>>> from solver.models import load_model, model_activations   # doctest: +SKIP
>>> net = load_model("model_a.pt", arch="digits-cnn")          # doctest: +SKIP
>>> A = model_activations(net, images, "bn2", rectify=True)   # doctest: +SKIP

Models come as

- a **TorchScript** file (``torch.jit.save`` of a traced or scripted model),
  loaded with ``torch.jit.load``; or
- a **state_dict** (``torch.save(model.state_dict())``), read with
  ``torch.load(weights_only=True)``, plus an architecture name: ``digits-cnn``
  (the network of the shipped digits-cnn sample) or any name that
  ``torchvision.models.get_model`` knows (needs torchvision installed).

No full pickled model (``torch.save(model)``) is ever loaded: unpickling can
run code.
"""

from __future__ import annotations

import logging
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from solver.exceptions import PSMDInputError

logger = logging.getLogger(__name__)

POOLINGS = ("mean", "center")
NORMALIZATIONS = ("none", "imagenet")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# Architectures psmd ships (name -> "module:attribute").
BUILTIN_ARCHS = {"digits-cnn": "sample_data._cnn:DigitsCNN"}


def every_tenth(report: Callable[[int, int], None]) -> Callable[[int, int], None]:
    """Wrap a ``progress(done, total)`` callback to call it about ten times a run."""
    shown: set = set()

    def progress(done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth not in shown:
            shown.add(tenth)
            report(done, total)
        if done >= total:
            shown.clear()  # the next model starts from zero

    return progress


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:120] if text else type(err).__name__


class Cancelled(Exception):
    """Raised by :func:`model_activations` when ``should_stop`` says so."""


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


def _build_arch(arch: str):
    import importlib

    if arch in BUILTIN_ARCHS:
        module, attr = BUILTIN_ARCHS[arch].split(":")
        return getattr(importlib.import_module(module), attr)()
    try:
        import torchvision
    except Exception:  # not installed, or built for another torch
        raise PSMDInputError(
            f"architecture {arch!r}: not built in (allowed: "
            f"{', '.join(BUILTIN_ARCHS)}), and torchvision is not usable here; "
            "install a torchvision matching your torch, or save the model as "
            "TorchScript."
        ) from None
    try:
        return torchvision.models.get_model(arch, weights=None)
    except (ValueError, KeyError):
        raise PSMDInputError(
            f"architecture {arch!r} is not known to torchvision; allowed: "
            f"{', '.join(BUILTIN_ARCHS)} or a torchvision.models name "
            "(e.g. resnet18)."
        ) from None


def load_model(path: str | Path, *, arch: str | None = None):
    """Load a TorchScript model, or a state_dict into an architecture.

    Parameters
    ----------
    path : str or Path
        ``.pt``/``.pth`` file.
    arch : str, optional
        Architecture of a state_dict: ``"digits-cnn"`` or a torchvision
        model name. Not needed for TorchScript.

    Returns
    -------
    torch.nn.Module or torch.jit.ScriptModule
        On the CPU, in eval mode.

    Raises
    ------
    PSMDInputError
        Missing or unreadable file, a pickled full model, a state_dict without
        ``arch``, or weights that do not fit the architecture.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise PSMDInputError(f"{path}: no such model file.")
    if path.stat().st_size == 0:
        raise PSMDInputError(f"{path}: the model file is empty.")
    if _is_torchscript(path):
        try:
            model = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as err:
            raise PSMDInputError(
                f"{path}: not a loadable TorchScript model ({_first_line(err)})."
            ) from None
        return model.eval()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise PSMDInputError(
            f"{path}: holds a pickled Python object (a whole model?), which is "
            "never loaded; save model.state_dict() or TorchScript instead."
        ) from None
    except Exception as err:  # torch's reader raises many kinds on junk bytes
        raise PSMDInputError(
            f"{path}: not a readable PyTorch file ({_first_line(err)})."
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise PSMDInputError(
            f"{path}: is not a state_dict (a dict of tensors) nor TorchScript."
        )
    if arch is None:
        raise PSMDInputError(
            f"{path}: is a state_dict; name its architecture (--arch), e.g. "
            f"{', '.join(BUILTIN_ARCHS)} or a torchvision name such as resnet18."
        )
    model = _build_arch(arch)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise PSMDInputError(
            f"{path}: weights do not fit architecture {arch!r} "
            f"({len(result.missing_keys)} missing, {len(result.unexpected_keys)} "
            "unexpected keys)."
        )
    return model.eval()


def layer_names(model) -> list[str]:
    """Names of the model's layers (submodules) that activations can be read from.

    For TorchScript models only direct children of the model are listed: a
    loaded TorchScript model takes no forward hooks, so psmd reads a child's
    output by rewriting the model's forward graph, which reaches its direct
    children only.
    """
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        return [name for name, _ in model.named_children()]
    return [name for name, _ in model.named_modules() if name]


def _input_channels(model) -> int:
    for p in model.parameters():
        if p.ndim == 4:
            return int(p.shape[1])
    return 3


def images_to_input(
    images: np.ndarray,
    *,
    channels: int,
    size: int | None = None,
    normalize: str = "none",
):
    """Stimulus images (n, H, W[, 3]) uint8 → float tensor (n, channels, H, W).

    Values are scaled to [0, 1]; grey images are repeated to three channels
    and colour ones averaged to one as the model needs; ``size`` resizes
    (bilinear); ``normalize="imagenet"`` subtracts ImageNet's mean and divides
    by its standard deviation (torchvision's pretrained convention).
    """
    import torch

    if normalize not in NORMALIZATIONS:
        raise PSMDInputError(
            f"normalize={normalize!r} is not allowed; allowed: "
            f"{', '.join(NORMALIZATIONS)}."
        )
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32) / 255.0)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.repeat(1, channels, 1, 1)
        elif channels == 1:
            x = x.mean(dim=1, keepdim=True)
        else:
            raise PSMDInputError(
                f"images have {x.shape[1]} channels but the model reads {channels}."
            )
    if size is not None:
        x = torch.nn.functional.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False
        )
    if normalize == "imagenet":
        if x.shape[1] != 3:
            raise PSMDInputError("ImageNet normalisation needs 3-channel input.")
        mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        x = (x - mean) / std
    return x


def _pool(out, pooling: str, rectify: bool):
    import torch

    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise PSMDInputError("the layer's output is not a tensor.")
    if rectify:
        out = torch.relu(out)
    if out.ndim == 2:
        return out
    if out.ndim < 2:
        raise PSMDInputError(f"the layer's output has shape {tuple(out.shape)}.")
    spatial = tuple(range(2, out.ndim))
    if pooling == "mean":
        return out.mean(dim=spatial)
    centre = tuple(s // 2 for s in out.shape[2:])
    return out[(slice(None), slice(None), *centre)]


def _scripted_layer(model, layer: str):
    """A function returning a direct child's output of a TorchScript model."""
    import torch

    graph = model.forward.graph.copy()
    target = None
    for node in graph.nodes():
        if node.kind() != "prim::CallMethod":
            continue
        src = node.inputsAt(0).node()
        if src.kind() == "prim::GetAttr" and src.s("name") == layer:
            target = node.outputsAt(0)
    if target is None:
        raise PSMDInputError(
            f"layer {layer!r} is not called directly by this TorchScript model's "
            "forward; allowed: direct children of a traced model, "
            f"{', '.join(layer_names(model))}."
        )
    while len(list(graph.outputs())):
        graph.eraseOutput(0)
    graph.registerOutput(target)
    torch._C._jit_pass_dce(graph)
    fn = torch._C._create_function_from_graph(f"psmd_{layer}", graph)
    return lambda x: fn(model._c, x)


def model_activations(
    model,
    images: np.ndarray,
    layer: str,
    *,
    pooling: str = "mean",
    rectify: bool = False,
    batch_size: int = 64,
    size: int | None = None,
    normalize: str = "none",
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Activations of one layer for every image, one column per channel.

    Parameters
    ----------
    model : torch.nn.Module or ScriptModule
        From :func:`load_model`.
    images : ndarray of uint8 of shape (n, H, W) or (n, H, W, 3)
        The stimuli, one per row of the result.
    layer : str
        A name from :func:`layer_names`; its output is read by a forward
        hook (TorchScript: by a rewrite of the forward graph).
    pooling : {"mean", "center"}, default="mean"
        A feature map (n, C, H, W) becomes (n, C) by the spatial mean or by
        the value at the centre position.
    rectify : bool, default=False
        Apply a ReLU before pooling (for layers followed by a functional ReLU).
    batch_size : int, default=64
    size, normalize
        Input preparation, see :func:`images_to_input`.
    device : str, default="cpu"
    progress : callable(done, total), optional
        Called after each batch.
    should_stop : callable() -> bool, optional
        Checked before each batch; True raises :class:`Cancelled`.

    Returns
    -------
    ndarray of float64 of shape (n_images, n_channels)

    Raises
    ------
    PSMDInputError
        Unknown layer or pooling, images the model cannot read.
    Cancelled
        ``should_stop`` returned True.
    """
    import torch

    if pooling not in POOLINGS:
        raise PSMDInputError(
            f"pooling={pooling!r} is not allowed; allowed: {', '.join(POOLINGS)}."
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise PSMDInputError(
            f"batch_size={batch_size!r}; a positive integer is required."
        )
    images = np.asarray(images)
    if images.ndim not in (3, 4) or len(images) == 0:
        raise PSMDInputError(
            f"images have shape {images.shape}; allowed: (n, H, W) or (n, H, W, 3)."
        )
    names = layer_names(model)
    if layer not in names:
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise PSMDInputError(f"layer {layer!r} is not in the model; allowed: {shown}.")
    model = model.to(device).eval()
    scripted = isinstance(model, torch.jit.ScriptModule)
    captured: list = []
    if scripted:
        run = _scripted_layer(model, layer)
        hook = None
    else:

        def keep(_module, _inputs, output):
            captured.append(output)

        hook = model.get_submodule(layer).register_forward_hook(keep)
        run = model
    channels = _input_channels(model)
    n = len(images)
    out = []
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            for lo in range(0, n, batch_size):
                if should_stop is not None and should_stop():
                    raise Cancelled(f"stopped after {lo} of {n} images")
                x = images_to_input(
                    images[lo : lo + batch_size],
                    channels=channels,
                    size=size,
                    normalize=normalize,
                ).to(device)
                captured.clear()
                try:
                    result = run(x)
                except RuntimeError as err:
                    raise PSMDInputError(
                        f"the model could not read the images ({_first_line(err)})."
                    ) from None
                value = result if scripted else captured[0]
                out.append(_pool(value, pooling, rectify).double().cpu().numpy())
                if progress is not None:
                    progress(min(lo + batch_size, n), n)
    finally:
        if hook is not None:
            hook.remove()
    acts = np.concatenate(out, axis=0).reshape(n, -1)
    logger.info(
        "activations of layer %s: %d images x %d channels in %.2f s on %s",
        layer,
        n,
        acts.shape[1],
        time.perf_counter() - start,
        device,
    )
    return acts


def pair_from_models(
    model_x,
    model_y,
    images,
    layer_x: str,
    layer_y: str | None = None,
    *,
    arch_x: str | None = None,
    arch_y: str | None = None,
    **options,
):
    """X and Y from two models and one set of images, as a checked pair.

    Parameters
    ----------
    model_x, model_y : str, Path or torch module
        Model files (see :func:`load_model`) or loaded models.
    images : str, Path or ndarray
        A folder of images, an ``.npz``/``.npy`` (see
        :func:`solver.io.load_images`), or an array (n, H, W[, 3]).
    layer_x, layer_y : str
        Layer of each model (``layer_y`` defaults to ``layer_x``).
    arch_x, arch_y : str, optional
        Architectures of state_dict files (``arch_y`` defaults to ``arch_x``).
    **options
        Passed to :func:`model_activations` (pooling, rectify, batch_size,
        size, normalize, device, progress, should_stop).

    Returns
    -------
    solver.validation.Pair
        With ``images`` and unit names ``"<layer>:<channel>"``.
    """
    from solver.io import load_images
    from solver.validation import check_pair

    if not isinstance(images, np.ndarray):
        images = load_images(images)
    layer_y = layer_y or layer_x
    arch_y = arch_y or arch_x
    acts = []
    for m, layer, arch in ((model_x, layer_x, arch_x), (model_y, layer_y, arch_y)):
        if isinstance(m, (str, Path)):
            m = load_model(m, arch=arch)
        acts.append(model_activations(m, images, layer, **options))
    X, Y = acts
    return check_pair(
        X,
        Y,
        images=images,
        names_x=[f"{layer_x}:{j}" for j in range(X.shape[1])],
        names_y=[f"{layer_y}:{j}" for j in range(Y.shape[1])],
        labels=(f"model X {layer_x}", f"model Y {layer_y}"),
    )
