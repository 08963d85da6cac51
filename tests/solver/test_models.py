"""Model mode: layer activations of two models, checked on the shipped digit CNNs."""

import sys
import types

import numpy as np
import pytest
import torch

from sample_data import DATA_DIR
from solver.cli import main
from solver.exceptions import PSMDInputError
from solver.models import (
    Cancelled,
    layer_names,
    load_model,
    model_activations,
    pair_from_models,
)

MODEL_A = DATA_DIR / "digits-cnn" / "model_a.pt"
MODEL_B = DATA_DIR / "digits-cnn" / "model_b.pt"


@pytest.fixture(scope="module")
def shipped():
    with np.load(DATA_DIR / "digits-cnn" / "activations.npz") as z:
        return {k: z[k][:200] for k in ("images", "a_conv2", "a_conv3", "b_conv3")}


def test_state_dict_hooks_reproduce_the_shipped_activations(shipped):
    model = load_model(MODEL_A, arch="digits-cnn")
    seen = []
    A = model_activations(
        model,
        shipped["images"],
        "bn2",
        rectify=True,
        batch_size=64,
        progress=lambda done, total: seen.append((done, total)),
    )
    np.testing.assert_allclose(A, shipped["a_conv2"], atol=2e-6)
    assert seen == [(64, 200), (128, 200), (192, 200), (200, 200)]


def test_torchscript_trace_gives_the_same_activations(tmp_path, shipped):
    model = load_model(MODEL_A, arch="digits-cnn")
    torch.jit.save(torch.jit.trace(model, torch.rand(2, 1, 8, 8)), tmp_path / "a.pt")
    scripted = load_model(tmp_path / "a.pt")
    assert "bn3" in layer_names(scripted)
    A = model_activations(scripted, shipped["images"], "bn3", rectify=True)
    np.testing.assert_allclose(A, shipped["a_conv3"], atol=2e-6)


def test_centre_pooling_reads_the_middle_position(shipped):
    model = load_model(MODEL_A, arch="digits-cnn")
    images = shipped["images"][:10]
    A = model_activations(model, images, "conv1", pooling="center")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    with torch.no_grad():
        ref = model.conv1(x)[:, :, 4, 4].double().numpy()
    np.testing.assert_allclose(A, ref, atol=1e-6)


def test_pair_from_models_matches_both_sides(shipped):
    pair = pair_from_models(
        MODEL_A, MODEL_B, shipped["images"], "bn3", arch_x="digits-cnn", rectify=True
    )
    np.testing.assert_allclose(pair.Y, shipped["b_conv3"], atol=2e-6)
    assert pair.names_x[:2] == ["bn3:0", "bn3:1"] and pair.images.shape == (200, 8, 8)


def test_cancel_stops_between_batches(shipped):
    model = load_model(MODEL_A, arch="digits-cnn")
    calls = iter([False, True])
    with pytest.raises(Cancelled, match="stopped after 64 of 200"):
        model_activations(
            model,
            shipped["images"],
            "bn1",
            batch_size=64,
            should_stop=lambda: next(calls),
        )


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_bad_models(tmp_path, monkeypatch, shipped):
    monkeypatch.chdir(tmp_path)
    torch.save(_Evil(), tmp_path / "whole.pt")
    with pytest.raises(PSMDInputError, match="never loaded"):
        load_model(tmp_path / "whole.pt", arch="digits-cnn")
    assert not (tmp_path / "PWNED").exists()
    with pytest.raises(PSMDInputError, match="is a state_dict; name its architecture"):
        load_model(MODEL_A)
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "lin.pt")
    with pytest.raises(PSMDInputError, match="do not fit architecture 'digits-cnn'"):
        load_model(tmp_path / "lin.pt", arch="digits-cnn")
    model = load_model(MODEL_A, arch="digits-cnn")
    with pytest.raises(PSMDInputError, match="layer 'conv9' is not in the model"):
        model_activations(model, shipped["images"], "conv9")
    with pytest.raises(PSMDInputError, match="pooling='max' is not allowed"):
        model_activations(model, shipped["images"], "conv1", pooling="max")
    with pytest.raises(PSMDInputError, match=r"images have shape \(8, 8\)"):
        model_activations(model, np.zeros((8, 8), np.uint8), "conv1")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(PSMDInputError, match="not a readable PyTorch file"):
        load_model(tmp_path / "junk.pt", arch="digits-cnn")


def test_torchvision_architecture_by_name(tmp_path, monkeypatch):
    """The torchvision path, with a stand-in module (torchvision is optional)."""

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Conv2d(3, 4, 3)
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.features(x).mean(dim=(2, 3)))

    def get_model(name, weights=None):
        if name != "tiny":
            raise ValueError(name)
        assert weights is None
        return Tiny()

    fake = types.ModuleType("torchvision")
    fake.models = types.SimpleNamespace(get_model=get_model)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    torch.save(Tiny().state_dict(), tmp_path / "tiny.pt")
    model = load_model(tmp_path / "tiny.pt", arch="tiny")
    images = np.random.default_rng(0).integers(0, 255, (5, 16, 16), dtype=np.uint8)
    acts = model_activations(model, images, "features", normalize="imagenet", size=12)
    assert acts.shape == (5, 4)
    with pytest.raises(PSMDInputError, match="not known to torchvision"):
        load_model(tmp_path / "tiny.pt", arch="resnet999")


def test_cli_activations_then_path(tmp_path, capsys, shipped):
    np.savez(tmp_path / "stim.npz", images=shipped["images"][:60])
    out = tmp_path / "pair.npz"
    args = ["activations", str(MODEL_A), str(MODEL_B), "--arch", "digits-cnn"]
    rc = main(
        [
            *args,
            "--images",
            str(tmp_path / "stim.npz"),
            "--layer",
            "bn2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert "60/60 images" in captured.err and "wrote" in captured.out
    assert main(["path", str(out)]) == 0
    assert "best aligned X units: ['bn2:" in capsys.readouterr().out
    assert main([*args, "--list-layers"]) == 0
    assert "layers of X: conv1 bn1 conv2" in capsys.readouterr().out
    assert main([*args, "--layer", "bn2", "--out", str(out)]) == 2
    assert "--images is required" in capsys.readouterr().err
