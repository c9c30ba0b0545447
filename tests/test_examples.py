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
