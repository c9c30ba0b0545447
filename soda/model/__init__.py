"""The SODA network: encoder, modulated UNet, sections and masking, checkpoint I/O."""

from ..registry import build_model
from .encoder import Encoder
from .io import load_pretrained, resolve_checkpoint
from .soda import SODA
from .unet import UNet, stage_sections

__all__ = ["SODA", "Encoder", "UNet", "build_model", "load_pretrained", "resolve_checkpoint", "stage_sections"]
