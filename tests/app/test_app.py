"""The command line of ``psmd-app`` and ``python -m psmd_app``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from psmd_app import app as app_module
from solver.exceptions import PSMDInputError

ROOT = Path(__file__).resolve().parents[2]


def test_import_has_no_side_effects():
    code = (
        "import logging, sys, psmd_app.app; "
        "assert 'sample_data' not in sys.modules and 'torch' not in sys.modules; "
        "assert not logging.getLogger('psmd_app').handlers"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)


def test_data_option_says_not_supported(capsys):
    assert app_module.main(["--data", "my_folder"]) == 2
    err = capsys.readouterr().err
    assert "not yet supported" in err and "--sample" in err


def test_unknown_sample_is_a_usage_error(capsys, tmp_path):
    assert app_module.main(["--sample", "nope", "--cache-dir", str(tmp_path)]) == 2
    assert "sample 'nope' is not known" in capsys.readouterr().err


def test_create_app_rejects_unknown_sample(tmp_path):
    with pytest.raises(PSMDInputError, match="not known; allowed"):
        app_module.create_app(sample="nope", cache_dir=tmp_path, samples=["planted"])


def test_module_entry_point_help():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "psmd_app", "--help"],
        capture_output=True, text=True, cwd=ROOT, env=env, check=True,
    )  # fmt: skip
    for option in (
        "--data",
        "--sample",
        "--host",
        "--port",
        "--device",
        "--no-browser",
    ):
        assert option in out.stdout


def test_parser_defaults():
    args = app_module._parser().parse_args([])
    assert (args.host, args.port, args.sample) == ("127.0.0.1", 8050, "digits-cnn")
