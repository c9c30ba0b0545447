"""The explorer: widget values in, images / figures / files out. Calls soda.api and soda.precompute; builds no widgets.

One ``Explorer`` per process holds the models (shared, read-only, at most ``max_loaded`` at once) and their cached
assets. Everything that belongs to one user lives in a plain ``state`` dict that the UI keeps in ``gr.State`` (see
explorer_edit.py). The edited latent is z0 moved by each edit in turn (``soda.api.move_along``: ``+ amount *
direction``): directions are per-section principal directions (``section{k}.pc{c}``), label directions
(``label.<name>``), both in units of the data's std along them, and prompt directions (``clip.<prompt>#<digest>``);
on the procedural world a label slider may instead be z-dependent (soda.sliders.moves: it turns a hue, swaps the
shape or steps the scale by classes). Errors meant for the user are raised as ``ExplorerError``;
warnings are returned as lists of strings.

``Explorer`` is a composition of small services, each given what it needs in its constructor (nothing reaches into
another through ``self``); all share one ``calls`` counter:

- ``CheckpointStore`` (explorer_checkpoints.py): allow-list, loading (at most ``max_loaded``), model card. Needs
  nothing; calls its ``on_load`` hook (here: replay the saved prompt sliders) on each freshly loaded checkpoint.
- ``Renderer`` (explorer_render.py): slider values -> edits -> latent, cached decode. Needs nothing.
- ``PromptSliders`` (explorer_prompts.py): prompt directions (names, slots, the file that keeps them). Needs nothing.
- ``Editor`` (explorer_edit.py): a user's state: load, edit, undo, traverse, refine. Needs checkpoints, renderer.
- ``LatentMap`` (explorer_map.py): the latent map, its marker and clicks. Needs checkpoints, renderer, editor.
- ``Views`` (explorer_views.py): interpolate, mix, novel views, orbits. Needs checkpoints, editor, renderer.
- ``Uncertainty`` (explorer_uncertainty.py): what z does not store, the current edit decoded with K noise seeds.
  Needs editor, renderer.
- ``ClipModels`` (explorer_clip_load.py): CLIP weights loaded in the background. Needs the spec and the device.
- ``ClipTools`` (explorer_clip.py): slider names, prompt sliders, map colouring. Needs checkpoints, CLIP models,
  prompt sliders, latent map.

The explorer's methods are its services' methods under the names the panels and tests use (``_Via``).
"""

from __future__ import annotations

from collections import Counter

from .explorer_checkpoints import HUB_MAX_MB, CheckpointStore, discover_checkpoints  # noqa: F401 - for app.py
from .explorer_clip import ClipTools
from .explorer_clip_load import ClipModels
from .explorer_edit import Editor
from .explorer_map import LatentMap
from .explorer_prompts import PromptSliders
from .explorer_render import Renderer
from .explorer_uncertainty import Uncertainty
from .explorer_views import Views
from .loaded import (  # noqa: F401 - re-exported for the panels
    COMPONENTS,
    HISTORY,
    MAX_SEED,
    N_SLOTS,
    NAMED_SLOTS,
    SECTION_SLOTS,
    SLIDER_SPAN,
    ExplorerError,
    Loaded,
    Progress,
    change_map_image,
    check_seed,
    clip,
    make_loaded,
    psnr,
)


class _Via:
    """An attribute of the explorer that is one of its services' attributes: ``preview = _Via("editor")`` makes
    ``explorer.preview`` the editor's ``preview`` (``_Via("prompts", "add")`` renames). Read-only."""

    def __init__(self, service: str, name: str | None = None):
        self.service, self.name = service, name

    def __set_name__(self, owner, name: str) -> None:
        self.name = self.name or name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return getattr(getattr(obj, self.service), self.name)

    def __set__(self, obj, value) -> None:
        raise AttributeError(f"set {self.service}.{self.name} instead")


class Explorer:
    """Models, assets and the operations of every panel (see the module docstring)."""

    def __init__(
        self,
        checkpoint: str,
        allowed: list[str] | None = None,
        hub_ids: list[str] | None = None,
        hub_max_mb: float = HUB_MAX_MB,
        n_map: int = 4000,
        n_examples: int = 16,
        device: str = "cpu",
        max_loaded: int = 2,
        clip_spec: str | None = None,
    ):
        self.calls: Counter = Counter()  # how often each operation ran (tests check that drags do not flood)
        self.prompts = PromptSliders()
        self.checkpoints = CheckpointStore(
            checkpoint,
            allowed=allowed,
            hub_ids=hub_ids,  # hub ids the page may open: none by default; "*" (local use) any; each within hub_max_mb
            hub_max_mb=hub_max_mb,
            n_map=n_map,
            n_examples=n_examples,
            device=device,
            max_loaded=max_loaded,
            on_load=self.prompts.restore,  # prompt sliders saved beside the assets (recipes replay)
        )
        self.renderer = Renderer()
        self.editor = Editor(self.checkpoints, self.renderer, self.calls)
        self.map = LatentMap(self.checkpoints, self.renderer, self.editor, self.calls)
        self.views = Views(self.checkpoints, self.editor, self.renderer, self.calls)
        self.what_z = Uncertainty(self.editor, self.renderer, self.calls)
        self.clip_models = ClipModels(clip_spec, device, self.calls)  # nothing is loaded until first use
        self.clip = ClipTools(self.checkpoints, self.clip_models, self.prompts, self.map, self.calls)

    # checkpoints
    default_key = _Via("checkpoints")
    allowed = _Via("checkpoints")
    any_hub = _Via("checkpoints")
    hub_max_mb = _Via("checkpoints")
    n_map = _Via("checkpoints")
    n_examples = _Via("checkpoints")
    device = _Via("checkpoints")
    max_loaded = _Via("checkpoints")
    _loaded = _Via("checkpoints", "loaded")
    check_choice = _Via("checkpoints")
    get = _Via("checkpoints")
    card = _Via("checkpoints")
    # latents and images
    _cache = _Via("renderer", "cache")
    edits_from = _Via("renderer")
    slider_values = _Via("renderer")
    latent = _Via("renderer")
    steps = _Via("renderer")
    decode = _Via("renderer")
    # the editor
    new_state = _Via("editor")
    current = _Via("editor")
    load_example = _Via("editor")
    load_upload = _Via("editor")
    preview = _Via("editor")
    render = _Via("editor")
    apply_edits = _Via("editor")
    reset = _Via("editor")
    undo = _Via("editor")
    traversal = _Via("editor")
    refine = _Via("editor")
    edited = _Via("editor")
    uncertainty = _Via("what_z", "map")  # what z does not store
    # the latent map
    map_coords = _Via("map")
    map_figure = _Via("map")
    map_marker = _Via("map")
    map_click = _Via("map")
    # interpolate, mix, novel views
    pick_choices = _Via("views")
    interpolate = _Via("views")
    mix = _Via("views")
    check_camera = _Via("views")
    novel_view = _Via("views")
    orbit = _Via("views")
    # CLIP and prompt directions
    clip_status = _Via("clip", "status")
    name_sliders = _Via("clip")
    prompt_slider = _Via("clip")
    map_prompt_figure = _Via("clip")
    check_prompt_direction = _Via("prompts", "check")
    add_prompt_direction = _Via("prompts", "add")
    prompt_directions = _Via("prompts", "used_by")
    session_directions = _Via("prompts")
