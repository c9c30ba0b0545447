"""Validation of CLIP slider names against ground truth on the procedural world.

For every section direction (api.section_directions over encoded held-out scenes), one traversal is decoded per
reference latent. The factor classifiers say which factor the frames change most (fraction of frames whose predicted
factor leaves the reference frame's class); CLIP, when given, names the same frames. A slider agrees when CLIP's top
attribute maps (ATTRIBUTE_FACTOR) to the factor that changed most. Without CLIP the table still answers "which
factor does each slider move". With the tiny random CLIP of the tests, the agreement is meaningless (mechanics only).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from .. import api
from .cache import ResultCache, as_cache, model_fingerprint
from .factors import FactorClassifiers, factor_changes, load_or_train_factor_classifiers
from .loading import ClipModel
from .naming import DEFAULT_TEMPLATE, DEFAULT_VOCABULARY, Vocabulary, attribute_scores, normalise_vocabulary
from .traversal import DEFAULT_VALUES, Progress, traversal_frames

ATTRIBUTE_FACTOR = {
    "object colour": "object_hue",
    "floor colour": "floor_hue",
    "wall colour": "wall_hue",
    "background brightness": "wall_hue",  # the wall is the whole background of the room
    "object size": "scale",
    "object shape": "shape",
    "object rotation": "orientation",
}
MIN_CHANGE = 0.05  # a slider whose top factor changes in fewer frames than this moves "none"


@dataclass
class ValidationResult:
    """One row per slider (section direction): what it moves by the classifiers, what CLIP calls it."""

    rows: list[dict]
    classifier_accuracy: dict[str, float]
    with_clip: bool
    meta: dict = field(default_factory=dict)

    @property
    def agreement(self) -> float | None:
        """Fraction of sliders (that move some factor) whose CLIP top-1 attribute maps to the factor moved most."""
        rows = [r for r in self.rows if r["factor"] != "none"]
        if not self.with_clip or not rows:
            return None
        return sum(r["agree"] for r in rows) / len(rows)

    def markdown(self) -> str:
        """The agreement table and a summary, as markdown."""
        cols = ["slider", "factor moved most (frames changed)", "next"]
        if self.with_clip:
            cols += ["CLIP name (score)", "CLIP next", "agree"]
        out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in self.rows:
            cells = [
                r["slider"],
                f"{r['factor']} ({r['factor_change']:.2f})",
                f"{r['next_factor']} ({r['next_change']:.2f})" if r["next_change"] > 0 else "-",
            ]
            if self.with_clip:
                names = r["clip_names"]
                cells += [
                    f"{names[0][0]} ({names[0][1]:.2f})" if names else "-",
                    ", ".join(f"{n} ({s:.2f})" for n, s in names[1:]) or "-",
                    "yes" if r["agree"] else "no",
                ]
            out.append("| " + " | ".join(cells) + " |")
        acc = ", ".join(f"{k} {v:.2f}" for k, v in self.classifier_accuracy.items())
        out.append("")
        out.append(f"Factor classifiers (held-out accuracy; scale and orientation binned): {acc}.")
        if self.with_clip:
            ag = self.agreement
            moved = sum(r["factor"] != "none" for r in self.rows)
            top3 = sum(r["agree_top3"] for r in self.rows if r["factor"] != "none")
            out.append(
                f"CLIP ({self.meta.get('clip')}) agrees with the classifiers on "
                f"{'-' if ag is None else f'{ag:.0%}'} of the {moved} sliders that move a factor (top-1); "
                f"{top3}/{moved} within its top {self.meta.get('top_k', 3)}."
            )
        return "\n".join(out)

    def to_json(self) -> dict:
        return {
            "rows": self.rows,
            "classifier_accuracy": self.classifier_accuracy,
            "with_clip": self.with_clip,
            "agreement": self.agreement,
            "meta": self.meta,
        }


def _check_world(model) -> None:
    cfg = model.full_config
    dataset = cfg.data.dataset if cfg is not None else "world"
    if dataset != "world":
        raise ValueError(f"name validation needs ground-truth factors: the procedural world, not '{dataset}'")


def validate_names(
    model,
    clip: ClipModel | None = None,
    n_components: int = 1,
    n_refs: int = 2,
    n_data: int = 512,
    vocabulary: Vocabulary = DEFAULT_VOCABULARY,
    values: Sequence[float] = DEFAULT_VALUES,
    decode_steps: int | None = None,
    seed: int = 0,
    top_k: int = 3,
    classifiers: FactorClassifiers | None = None,
    attribute_factor: Mapping[str, str] = ATTRIBUTE_FACTOR,
    cache: ResultCache | str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> ValidationResult:
    """Section directions of ``model`` (n_components per section, from n_data encoded held-out scenes) traversed
    from n_refs held-out latents over ``values`` -> ValidationResult (one row per direction, see the docstring)."""
    _check_world(model)
    from ..data.views import world_eval_set

    say = progress or (lambda f, s: None)
    store = as_cache(cache)
    vals = sorted({float(v) for v in values} | {0.0})
    vocab = normalise_vocabulary(vocabulary)
    clf = classifiers or load_or_train_factor_classifiers(model.res, store, lambda f, s: say(0.3 * f, s))
    say(0.3, "encoding held-out scenes")
    data = world_eval_set(max(n_data, n_refs), model.res, split="test", seed=seed + 100, camera="fixed")
    Z = api.encode(model, data["images"])
    sections = api.section_directions(model, Z, n_components)
    labels = [f"s{k}.c{c}" for k, comps in enumerate(sections) for c in range(len(comps))]
    D = torch.stack([d for comps in sections for d in comps])  # (K, z_dim)
    frames = traversal_frames(
        model, D, Z[:n_refs], vals, decode_steps, seed, progress=lambda f, s: say(0.35 + 0.45 * f, s)
    )  # (K, R, S, 3, H, W)
    say(0.8, "classifying frames")
    change = factor_changes(clf, frames, vals.index(0.0))  # (K, F)
    names = None
    if clip is not None:
        say(0.85, "naming with CLIP")
        names = attribute_scores(clip, frames, vocab, DEFAULT_TEMPLATE).top(top_k)
    rows = []
    for k, label in enumerate(labels):
        order = torch.argsort(change[k], descending=True, stable=True).tolist()
        top, nxt = order[0], order[1]
        factor = clf.names[top] if float(change[k, top]) >= MIN_CHANGE else "none"
        row = {
            "slider": label,
            "factor": factor,
            "factor_change": float(change[k, top]),
            "next_factor": clf.names[nxt],
            "next_change": float(change[k, nxt]),
            "changes": dict(zip(clf.names, change[k].tolist())),
        }
        if names is not None:
            mapped = [attribute_factor.get(n) for n, _ in names[k]]
            row.update(
                clip_names=[[n, s] for n, s in names[k]],
                agree=bool(mapped and mapped[0] == factor),
                agree_top3=factor in mapped,
            )
        rows.append(row)
    say(1.0, "done")
    meta = {
        "soda": model_fingerprint(model),
        "clip": clip.spec if clip else None,
        "values": vals,
        "n_refs": n_refs,
        "n_data": n_data,
        "n_components": n_components,
        "top_k": top_k,
        "seed": seed,
        "decode_steps": decode_steps or model.cfg.diffusion.preview_steps,
    }
    return ValidationResult(rows, dict(clf.accuracy), clip is not None, meta)
