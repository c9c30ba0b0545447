"""SODA: bottleneck diffusion models for representation learning (Hudson et al., CVPR 2024)."""

import os

# Measured here: with OpenMP's default spin-waiting, two threads on a 2-core machine that is also running anything
# else are up to 60x slower on small convolutions. Passive waiting costs nothing when the machine is idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .api import load_model
from .config import ConfigError, SODAConfig
from .model import SODA

__version__ = "0.1.0"


__all__ = ["SODA", "ConfigError", "SODAConfig", "load_model", "__version__"]
