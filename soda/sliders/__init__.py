"""Named slider directions for the procedural world, and what each slider measurably does (issue 12).

Every named slider promises something (``soda.eval.edits.SliderSpec``): "object_hue +" moves the object's hue
towards blue (and, at negative amounts, towards the opposite colour), "scale +" makes the object larger, "shape:
sphere" turns it into a sphere. Directions are fitted on held-out latents Z (N, z_dim) with their true factors, in
one of these ways (compared by the edit-fidelity metric of ``soda.eval.edits``; see docs/EDITS.md):

- ``logistic``: the explorer's original directions: a logistic regression on all of z (upper vs lower half of an
  ordered factor's values, one class vs the rest for the shape), normal scaled to one std of Z along it.
- ``sections``: the same regression on the dims of the latent sections that carry the factor (by the DCI importance
  per section: random-forest importances on z summed within each section), zero elsewhere.
- ``mean``: the difference of the class means (towards the + end's classes minus towards the - end's), on the
  carrying sections: the shift that takes the average scene of one side to the other, rather than the boundary's
  normal.
- ``mean_all``: the same difference of class means on all of z.
- ``projected``: ``mean_all`` minus its first-order effect on the factors the slider does not promise, measured
  through the decoder (``projected_directions``: InterFaceGAN's conditional editing with decoder-measured attribute
  gradients).
- ``rotate`` / ``rotate_sec`` / ``rotate_proj`` (hue sliders only): not a direction but a turn of the colour wheel
  (``HueRotation``, ``soda.sliders.moves``): each scene's hue is read from z and turned towards the named colour
  along the shorter arc, one hue class per unit; the change is written back on all of z, on the carrying sections,
  or on all of z with its first-order effect on the other factors removed (as ``projected``).
- ``swap`` (shape sliders only): ``ClassSwap``, which reads each scene's shape from z (a logistic regression) and
  moves it by the difference of the class means, from its own shape to the named one; +1 is all the way.
- ``step`` (scale and orientation): ``ClassStep``, which reads where each scene lies on the chain of the factor's
  class means and moves it one class per unit towards the named end.
- ``refined``: ``mean_all`` tuned through a 1-2 step differentiable decode against the factor classifiers
  (``refine_direction``). Compared in docs/EDITS.md, it trades effect for preservation without beating the others
  by the choice's margin, so it is not among ``CANDIDATES``.

``choose_directions`` measures every candidate method for every slider on decoded held-out scenes and keeps, per
slider, the direction that does best (the larger of min(effect, preservation), ties by their product): the
directions shipped by ``python -m soda.precompute``. Without a measurement (the app computing assets on first use)
the sliders are the ``SHIPPED`` method's.

All directions are scaled to one standard deviation of the data along them, so slider amounts mean the same for
every method (a rotation's and a step's unit is one class, a swap's whole change is 1).
``slider_directions`` gives the shipped method's directions; ``measure_for_assets`` measures them (and the
section-PC sliders) at precompute time and writes the one-line captions the explorer shows.

The package: ``fit`` (directions from latents alone), ``decoder`` (through the decoder: projected and refined),
``choose`` (the choice by measurement), ``captions`` (the captions measured at precompute time). Every public name
is importable from here.
"""

from .captions import (
    FREE_WEAK,
    MEASURE_DEFAULTS,
    WEAK_EFFECT,
    caption,
    ensure_free_measured,
    ensure_measured,
    free_caption,
    measure_for_assets,
)
from .choose import CANDIDATES, CHOICE_MARGIN, choose_directions
from .choose import _score as _score  # the choice's ranking, for tests
from .decoder import (
    differentiable_decoder,
    frozen,
    project_out,
    projected_directions,
    refine_direction,
    score_gradients,
)
from .fit import (
    CARRIER_SHARE,
    FIT_METHODS,
    METHODS,
    SHIPPED,
    carrier_mask,
    fit_directions,
    logistic_direction,
    mean_direction,
    section_importance,
    side_labels,
    slider_directions,
)
from .moves import (
    MOVE_METHODS,
    ROTATE_METHODS,
    ClassStep,
    ClassSwap,
    HueRotation,
    fit_rotation,
    fit_rotations,
    fit_steps,
    fit_swaps,
    load_move,
)

__all__ = [
    "CANDIDATES",
    "CARRIER_SHARE",
    "CHOICE_MARGIN",
    "FIT_METHODS",
    "MOVE_METHODS",
    "ClassStep",
    "ClassSwap",
    "HueRotation",
    "ROTATE_METHODS",
    "MEASURE_DEFAULTS",
    "METHODS",
    "FREE_WEAK",
    "SHIPPED",
    "WEAK_EFFECT",
    "caption",
    "carrier_mask",
    "choose_directions",
    "differentiable_decoder",
    "ensure_free_measured",
    "ensure_measured",
    "fit_directions",
    "fit_rotation",
    "fit_rotations",
    "fit_steps",
    "fit_swaps",
    "load_move",
    "frozen",
    "logistic_direction",
    "mean_direction",
    "measure_for_assets",
    "free_caption",
    "project_out",
    "projected_directions",
    "refine_direction",
    "score_gradients",
    "section_importance",
    "side_labels",
    "slider_directions",
]
