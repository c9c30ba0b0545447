"""The README's Python example is examples/quickstart.py, word for word, and it runs as written from outside the
repository, with no arguments: the bundled checkpoint is found from the installed package (``pip install -e .``, as
in the README's setup and scripts/test.sh), not from the working folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart.py"
CHECKPOINT = ROOT / "assets" / "checkpoints" / "world32"


def readme_python_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Using the library from Python") :]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_example_is_the_quickstart_file():
    assert readme_python_example() == QUICKSTART.read_text()


@pytest.mark.slow
def test_the_readmes_quickstart_runs_with_no_arguments_from_any_folder(tmp_path):
    if not (CHECKPOINT / "model.safetensors").is_file():
        pytest.skip("the bundled checkpoint is not in this checkout")
    script = tmp_path / "quickstart.py"
    script.write_text(readme_python_example())  # the README's copy, as a reader would paste it
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SODA_CHECKPOINTS_DIR")}
    env |= {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}  # only the installed package can be imported
    r = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    hint = " (is the project installed? pip install -e .)" if "ModuleNotFoundError" in r.stderr else ""
    assert r.returncode == 0, f"quickstart failed{hint}:\n{r.stderr[-3000:]}"
    assert re.search(r"z \(64, \d+\), edited \(1, 3, \d+, \d+\), mixed latent \(\d+,\) -> quickstart.png", r.stdout)
    img = np.asarray(Image.open(tmp_path / "quickstart.png"))  # written into the working folder
    assert img.shape == (128, 5 * 128, 3) and img.std() > 5  # five panels, not blank


# ------------------------------------------------------------------------------------------------------------
# Install: the pinned default, the CPU-only way and the Space's lean install say the same versions
# ------------------------------------------------------------------------------------------------------------


def _pins(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(torch|torchvision)==(\S+)", text, re.MULTILINE))


def test_the_cpu_only_install_uses_the_pinned_versions():
    pins = _pins((ROOT / "requirements.txt").read_text())
    assert set(pins) == {"torch", "torchvision"}
    cpu_index = "--index-url https://download.pytorch.org/whl/cpu"
    command = f".venv/bin/pip install torch=={pins['torch']} torchvision=={pins['torchvision']} {cpu_index}"
    readme = (ROOT / "README.md").read_text()
    assert command in readme and "CUDA build" in readme  # the README says what the default pulls, and the way out
    space = (ROOT / "pre-requirements.txt").read_text()  # installed by a Space before requirements.txt
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in space
    assert _pins(space) == {k: f"{v}+cpu" for k, v in pins.items()}


def test_the_package_metadata_has_no_deprecated_fields():
    """setuptools warned at every install about `license = { text = ... }`: the SPDX string needs setuptools>=77."""
    import warnings

    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    assert re.search(r'^requires = \["setuptools>=77"\]', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert dist.metadata.license_expression == "Apache-2.0"
    assert not [str(w.message) for w in caught if "deprecat" in str(w.message).lower()]
