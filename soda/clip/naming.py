"""Slider names from CLIP: decode a short traversal along each direction and measure which attribute CLIP sees change.

A vocabulary maps attribute names to value prompts ({"object colour": ("a red object", "a blue object", ...)}). For
every traversal frame CLIP gives a zero-shot distribution over each attribute's values (softmax of its logits over
those prompts only); an attribute's score is the total variation of that distribution along the traversal, summed
over consecutive frames and averaged over the reference latents. 0 means CLIP reads the same value in every frame;
1 means one complete change of the value it reads (red -> blue); more means several. An attribute with a single
prompt is read against a neutral prompt (present vs absent). Scores of different directions are comparable because
every direction moves the same number of standard deviations (``values``).

    names = name_directions(model, clip, api_dirs, z_ref, cache="runs/clip-cache")   # [[(phrase, score)] * top_k]
    label = slider_label(names[0])                                                    # 'object colour 0.83 · ...'
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .cache import ResultCache, as_cache, model_fingerprint, tensor_digest
from .loading import ClipModel
from .traversal import Progress, as_directions, traversal_frames

Vocabulary = Mapping[str, Sequence[str]] | Sequence[str] | str

COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")
DEFAULT_TEMPLATE = "a 3d render of {}."
NEUTRAL_PROMPT = "a picture"
DEFAULT_VOCABULARY: dict[str, tuple[str, ...]] = {
    "object colour": tuple(f"a {c} object" for c in COLOURS),
    "object shape": ("a cube", "a cylinder", "a sphere", "a capsule"),
    "object size": ("a small object", "a large object"),
    "object rotation": ("an object turned to the left", "an object facing the camera", "an object turned to the right"),
    "floor colour": tuple(f"a {c} floor" for c in COLOURS),
    "wall colour": tuple(f"a {c} wall" for c in COLOURS),
    "background brightness": ("a dark background", "a bright background"),
    "lighting": ("a brightly lit scene", "a dimly lit scene"),
    "camera viewpoint": ("seen from above", "seen from the side", "seen from the left", "seen from the right"),
    "image quality": ("a sharp image", "a blurry image", "a noisy image"),
}


# ------------------------------------------------------------------------------------------------------------
# Vocabulary (editable as text: one attribute per line, "name: prompt | prompt | ...")
# ------------------------------------------------------------------------------------------------------------


def parse_vocabulary(text: str) -> dict[str, tuple[str, ...]]:
    """'name: prompt | prompt' lines ('#' comments; a line without ':' is one prompt named by itself) -> dict."""
    vocab: dict[str, tuple[str, ...]] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, rest = line.partition(":")
        prompts = tuple(p.strip() for p in (rest if sep else name).split("|") if p.strip())
        name = name.strip()
        if not name or not prompts:
            raise ValueError(f"vocabulary line {n} ('{raw.strip()}'): write 'name: prompt | prompt | ...'")
        if name in vocab:
            raise ValueError(f"vocabulary line {n}: attribute '{name}' appears twice")
        vocab[name] = prompts
    if not vocab:
        raise ValueError("the vocabulary is empty: give at least one line 'name: prompt | prompt'")
    return vocab


def format_vocabulary(vocab: Vocabulary = DEFAULT_VOCABULARY) -> str:
    """A vocabulary -> its editable text form (parse_vocabulary reads it back)."""
    return "\n".join(f"{name}: {' | '.join(prompts)}" for name, prompts in normalise_vocabulary(vocab).items())


def normalise_vocabulary(vocab: Vocabulary) -> dict[str, tuple[str, ...]]:
    """Text, a list of phrases (each its own one-prompt attribute) or a mapping -> {name: prompts}."""
    if isinstance(vocab, str):
        return parse_vocabulary(vocab)
    if isinstance(vocab, Mapping):
        out = {str(k): (v,) if isinstance(v, str) else tuple(str(p) for p in v) for k, v in vocab.items()}
    else:
        out = {str(p): (str(p),) for p in vocab}
    if not out or any(not v for v in out.values()):
        raise ValueError("the vocabulary needs at least one attribute, each with at least one prompt")
    return out


# ------------------------------------------------------------------------------------------------------------
# Scoring
# ------------------------------------------------------------------------------------------------------------


@dataclass
class AttributeScores:
    """How much CLIP's reading of each attribute changes along each traversal."""

    attributes: list[str]
    scores: torch.Tensor  # (K, A) summed total variation along the traversal, mean over reference latents

    def top(self, k: int = 3) -> list[list[tuple[str, float]]]:
        """Per direction, the k highest-scoring attributes as (name, score), best first."""
        out = []
        for row in self.scores:
            order = sorted(range(len(self.attributes)), key=lambda a: (-float(row[a]), a))[:k]
            out.append([(self.attributes[a], float(row[a])) for a in order])
        return out


def attribute_scores(
    clip: ClipModel,
    frames: torch.Tensor,
    vocabulary: Vocabulary = DEFAULT_VOCABULARY,
    template: str = DEFAULT_TEMPLATE,
    neutral: str = NEUTRAL_PROMPT,
) -> AttributeScores:
    """Traversal frames (K, R, S, 3, H, W) in [-1,1] -> AttributeScores (see the module docstring)."""
    vocab = normalise_vocabulary(vocabulary)
    K, R, S = frames.shape[:3]
    emb = clip.encode_images(frames.reshape(-1, *frames.shape[3:])).reshape(K, R, S, -1)  # (K, R, S, D)
    groups = [list(p) if len(p) > 1 else [p[0], neutral] for p in vocab.values()]
    texts = sorted({t for g in groups for t in g})
    text = clip.encode_text([template.format(t) for t in texts])  # (T, D), every prompt once
    logits = clip.logit_scale * emb @ text.T  # (K, R, S, T)
    names, scores = list(vocab), []
    for group in groups:
        prob = logits[..., [texts.index(t) for t in group]].softmax(-1)  # (K, R, S, m): this attribute's values
        tv = 0.5 * (prob[:, :, 1:] - prob[:, :, :-1]).abs().sum(-1)  # (K, R, S-1)
        scores.append(tv.sum(-1).mean(-1))  # (K,)
    return AttributeScores(names, torch.stack(scores, 1) if scores else torch.zeros(K, 0))


def name_directions(
    model,
    clip: ClipModel,
    directions,
    z_ref: torch.Tensor,
    vocabulary: Vocabulary = DEFAULT_VOCABULARY,
    steps: int = 5,
    values: Sequence[float] | None = None,
    top_k: int = 3,
    decode_steps: int | None = None,
    seed: int = 0,
    template: str = DEFAULT_TEMPLATE,
    cache: ResultCache | str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> list[list[tuple[str, float]]]:
    """Per direction (K, z_dim) the top_k vocabulary attributes whose CLIP reading changes most when z_ref (R, z_dim)
    moves over ``values`` (default ``steps`` values in [-2, 2] std) -> [[(attribute, score)] * top_k] * K."""
    vals = [float(v) for v in (values if values is not None else torch.linspace(-2, 2, steps).tolist())]
    if len(vals) < 2:
        raise ValueError("a traversal needs at least two values")
    d = as_directions(directions, model.z_dim)
    z_ref = z_ref.reshape(-1, model.z_dim).float()
    vocab = normalise_vocabulary(vocabulary)
    store = as_cache(cache)
    key = {
        "kind": "names",
        "soda": model_fingerprint(model),
        "clip": clip.key,
        "vocabulary": vocab,
        "template": template,
        "neutral": NEUTRAL_PROMPT,
        "values": vals,
        "seed": seed,
        "decode_steps": decode_steps or model.cfg.diffusion.preview_steps,
        "directions": tensor_digest(d),
        "z_ref": tensor_digest(z_ref),
    }
    hit = store.get("names", key) if store else None
    if hit is not None:
        result = AttributeScores(hit[0]["attributes"], torch.tensor(hit[0]["scores"]).reshape(d.shape[0], -1))
        return result.top(top_k)
    say = progress or (lambda f, s: None)
    frames = traversal_frames(model, d, z_ref, vals, decode_steps, seed, progress=lambda f, s: say(0.8 * f, s))
    say(0.8, "scoring the traversals with CLIP")
    result = attribute_scores(clip, frames, vocab, template)
    if store:
        store.put("names", key, {"attributes": result.attributes, "scores": result.scores.tolist()})
    say(1.0, "done")
    return result.top(top_k)


def slider_label(names: Sequence[tuple[str, float]], raw: str | None = None, digits: int = 2) -> str:
    """[(attribute, score), ...] (and the raw slider name) -> 'object colour 0.83 · shape 0.12 (s2.c0)'."""
    text = " · ".join(f"{n} {s:.{digits}f}" for n, s in names)
    return f"{text} ({raw})" if raw else text
