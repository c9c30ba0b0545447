"""Edit fidelity: do sliders, section mixing and novel views do what they say, measured on decoded images.

DCI and the probes read z; they do not look at what the decoder draws after an edit. Here every edit is decoded and
the ground-truth factor classifiers of ``soda.clip.factors`` (a small CNN per factor, trained on renders with exact
labels) read the factors of the reconstruction and of the edit, decoded with the same noise seed:

- **effect**: how often the intended factor moves the intended way. An ordered factor's slider has two ends, a class
  the + side moves towards and one the - side moves towards (scale and orientation: the largest and the smallest
  bin; a hue, which is circular, a colour and its opposite); an edit succeeds when the class gets strictly closer to
  the end its sign names (circular distance for hues), counted over the edits that can (the class is not already at
  that end). For ordered factors this is the signed step. A categorical slider ("shape: sphere") succeeds at + when
  the shape becomes the named one (counted where it was another) and at - when a scene of that shape leaves it.
- **preservation**: how often every other factor keeps its class (orientation is compared only where both images
  show a shape whose orientation is visible, the cube or the capsule).
- **changes**: the slider x factor matrix of how often each factor's class changes (what a slider really moves).

Section mixing (one section of scene B put into scene A at a time): the factors the section carries (from the DCI
importance per section) should follow the donor B, the rest should stay A's. Novel views (identity): every factor of
every orbit frame, read by classifiers trained on random cameras, should agree with the decoded source view's.

The scores are pure functions of predicted classes (``slider_scores``, ``mixing_scores``, ``view_identity``); the
``measure_*`` functions decode with any ``decode(z) -> images`` callable, so a model whose z holds the factors and
whose decoder is the renderer (``FactorOracle``) scores about 1 and the same model with permuted directions low
(tests/test_edits.py). ``run_edits`` is the step of ``python -m soda.eval``.

The package: ``scores`` (the promises and the pure scores), ``measure`` (decoding, the oracle, the step of
``python -m soda.eval``), ``figures`` (the report's section). Every public name is importable from here.
"""

from .figures import edit_figures, edits_section
from .measure import (
    FactorOracle,
    classifier_fn,
    edit_latents,
    measure_carriers,
    measure_mixing,
    measure_sliders,
    run_edits,
)
from .scores import (
    CIRCULAR,
    FACTORS,
    HUE_NAMES,
    ORIENT,
    SHAPE,
    WEAK,
    Classify,
    Decode,
    MixingScores,
    Progress,
    SliderScores,
    SliderSpec,
    accuracy,
    carriers_from_importance,
    change_rates,
    choose_carriers,
    class_distance,
    comparable,
    default_specs,
    hue_names,
    mixing_scores,
    section_groups,
    slider_outcomes,
    slider_scores,
    spec_for_label,
    view_identity,
)

__all__ = [
    "CIRCULAR",
    "FACTORS",
    "HUE_NAMES",
    "ORIENT",
    "SHAPE",
    "WEAK",
    "Classify",
    "Decode",
    "FactorOracle",
    "MixingScores",
    "Progress",
    "SliderScores",
    "SliderSpec",
    "accuracy",
    "carriers_from_importance",
    "change_rates",
    "choose_carriers",
    "class_distance",
    "classifier_fn",
    "comparable",
    "default_specs",
    "edit_figures",
    "edit_latents",
    "edits_section",
    "hue_names",
    "measure_carriers",
    "measure_mixing",
    "measure_sliders",
    "mixing_scores",
    "section_groups",
    "run_edits",
    "slider_outcomes",
    "slider_scores",
    "spec_for_label",
    "view_identity",
]
