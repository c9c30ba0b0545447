"""CLIP-named directions: slider names from open_clip, prompts that become sliders, map colouring, and a ground-truth
check of the names on the procedural world. See docs/CLIP.md.

    from soda import api, clip as sc
    clip = sc.load_clip()                                   # $SODA_CLIP, or ClipUnavailable with instructions
    names = sc.name_directions(model, clip, dirs, z_ref, cache=folder)     # [[(attribute, score)] * 3] per slider
    d, info = sc.prompt_direction(clip, "a red object", Z, images, cache=folder)
    colour = sc.prompt_scores(clip, "a red object", embeddings=sc.image_embeddings(clip, images, folder))

Importing this package does not import open_clip; nothing here imports gradio. CLIP never runs per slider move:
every function works on a batch once and its result is cached in ``folder`` (see soda.clip.cache).
"""

from .cache import ResultCache, model_fingerprint
from .factors import (
    FactorClassifiers,
    FactorMovement,
    load_or_train_factor_classifiers,
    slider_factors,
    train_factor_classifiers,
)
from .loading import ClipModel, load_clip, tiny_clip
from .naming import (
    DEFAULT_VOCABULARY,
    AttributeScores,
    attribute_scores,
    format_vocabulary,
    name_directions,
    parse_vocabulary,
    slider_label,
)
from .prompts import fit_direction, image_embeddings, prompt_direction, prompt_scores
from .specs import ENV_VAR, ClipUnavailable, card_spec, network_allowed, resolve_spec
from .traversal import traversal_frames
from .validate import ATTRIBUTE_FACTOR, ValidationResult, validate_names

__all__ = [
    "ATTRIBUTE_FACTOR",
    "DEFAULT_VOCABULARY",
    "ENV_VAR",
    "AttributeScores",
    "ClipModel",
    "ClipUnavailable",
    "FactorClassifiers",
    "FactorMovement",
    "ResultCache",
    "ValidationResult",
    "attribute_scores",
    "card_spec",
    "fit_direction",
    "format_vocabulary",
    "image_embeddings",
    "load_clip",
    "load_or_train_factor_classifiers",
    "model_fingerprint",
    "name_directions",
    "network_allowed",
    "parse_vocabulary",
    "prompt_direction",
    "prompt_scores",
    "resolve_spec",
    "slider_factors",
    "slider_label",
    "tiny_clip",
    "train_factor_classifiers",
    "traversal_frames",
    "validate_names",
]
