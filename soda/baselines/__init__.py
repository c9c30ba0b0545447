"""Comparison models trained by the same trainer on the same data: a beta-VAE and a plain autoencoder."""

from .autoencoder import Autoencoder

__all__ = ["Autoencoder"]
