"""The SODA network: encoder, modulated UNet, sections and masking, checkpoint I/O."""

from .encoder import Encoder
from .soda import SODA, resolve_checkpoint
from .unet import UNet, stage_sections

__all__ = ["SODA", "Encoder", "UNet", "resolve_checkpoint", "stage_sections"]
