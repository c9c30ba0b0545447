"""Export (PNG, latent .npy, JSON recipe) and replay of recipes.

A recipe holds everything that fixes an image: the checkpoint, the base latent, the edits (slider name -> amount in
std), the decoder seed, the number of steps, the sampler and the camera. Replaying it on the same checkpoint gives the
identical image. Example::

    {"format": "soda-recipe", "version": 1, "checkpoint": "assets/checkpoints/world32", "fingerprint": "1a2b...",
     "latent": [0.12, ...], "edits": {"section3.pc1": 1.5}, "seed": 0, "steps": 50, "sampler": "ddim",
     "camera": {"azimuth": -25.0, "elevation": 20.0, "radius": 4.0}, "z": [...]}
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from soda import api

from . import media
from .explorer import N_SLOTS, Explorer, ExplorerError, Loaded, check_seed
from .explorer_prompts import MAX_NAME, MAX_SESSION_DIRECTIONS, check_direction_name
from .text import excerpt, parse_json

FORMAT = "soda-recipe"
VERSION = 1
REQUIRED = ("latent", "edits", "seed", "steps")
MAX_RECIPE_BYTES = 1 << 20
MAX_LATENT = 1e6  # larger values overflow float32 on the way to the decoder; real latents are within a few dozen
MAX_Z = 4096  # numbers in a latent or a direction (the bundled checkpoint's z has 128)
MAX_EDITS = N_SLOTS + MAX_SESSION_DIRECTIONS  # every slider plus every prompt direction a recipe may bring
MAX_STEPS = 200  # sampling steps of any recipe; replay also holds them to the checkpoint's full-quality steps
MAX_SOURCE = 200  # characters of the recipe's 'source' kept in the session


def make_recipe(ex: Explorer, state: dict, seed, quality: str) -> dict:
    """The current editor state (committed edits) as a recipe dict."""
    m, z = ex.current(state)
    z = z[0]
    edits = state["edits"]
    cam = m.camera
    recipe = {
        "format": FORMAT,
        "version": VERSION,
        "checkpoint": m.key,
        "fingerprint": m.assets.fingerprint,
        "latent": [float(v) for v in np.asarray(state["z0"], dtype=np.float32)],
        "edits": {k: float(v) for k, v in sorted(edits.items())},
        "seed": check_seed(seed),
        "steps": ex.steps(m, quality),
        "sampler": ex.renderer.sampler(m),  # the sampler the steps were measured for (soda.steps)
        "camera": None if cam is None else cam.as_dict(),
        "z": [float(v) for v in z],
        "source": state.get("source", ""),
    }
    directions = ex.prompt_directions(m, edits)  # prompt sliders: the vectors travel with the recipe
    if directions:
        recipe["directions"] = directions
    return recipe


def export(ex: Explorer, state: dict, seed, quality: str) -> tuple[str, str, str]:
    """-> paths of (PNG of the edited image, latent .npy (1, z_dim) float32, recipe .json)."""
    recipe = make_recipe(ex, state, seed, quality)
    image, _, _ = replay(ex, recipe, state["ckpt"])
    png = media.write_png(image, "soda-edit")
    npy = media.new_path("soda-latent", ".npy")
    np.save(npy, np.asarray(recipe["z"], dtype=np.float32)[None], allow_pickle=False)
    js = media.new_path("soda-recipe", ".json")
    js.write_text(json.dumps(recipe, indent=1))
    return png, str(npy), str(js)


def read_recipe(path_or_text) -> dict:
    """A recipe file path (or JSON text / dict) -> validated dict; ExplorerError names what is wrong."""
    if isinstance(path_or_text, dict):
        d = path_or_text
    else:
        text = str(path_or_text or "")
        if not text:
            raise ExplorerError("no recipe file was given")
        if not text.lstrip().startswith("{"):
            p = Path(text)
            if not p.is_file():
                raise ExplorerError("the recipe file is missing")
            if p.stat().st_size > MAX_RECIPE_BYTES:
                raise ExplorerError("the recipe file is too large (over 1 MB)")
            text = p.read_text(errors="replace")
        d = parse_json(text, "the recipe", ExplorerError, parse_constant=_reject_constant)
    if not isinstance(d, dict):
        raise ExplorerError("the recipe must be a JSON object")
    if d.get("format", FORMAT) != FORMAT or d.get("version", VERSION) != VERSION:
        raise ExplorerError(
            f"not a SODA recipe of version {VERSION} (format '{d.get('format')}', version {d.get('version')})"
        )
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise ExplorerError(f"the recipe is missing {', '.join(missing)}")
    lat = d["latent"]
    if not isinstance(lat, list) or not lat or len(lat) > MAX_Z or not all(_is_num(v) for v in lat):
        raise ExplorerError(f"recipe 'latent' must be a list of numbers (at most {MAX_Z})")
    if not all(math.isfinite(v) for v in lat):
        raise ExplorerError("recipe 'latent' contains NaN or infinity")
    if not all(abs(v) <= MAX_LATENT for v in lat):
        raise ExplorerError(f"recipe 'latent' values must be within +-{MAX_LATENT:g}")
    edits = d["edits"]
    if not isinstance(edits, dict) or not all(_is_num(v) for v in edits.values()):
        raise ExplorerError("recipe 'edits' must map slider names to numbers")
    if len(edits) > MAX_EDITS:
        raise ExplorerError(f"recipe 'edits' must hold at most {MAX_EDITS} sliders (it has {len(edits)})")
    for k, v in edits.items():
        if len(k) > MAX_NAME:
            raise ExplorerError(f"recipe edit {excerpt(k)} is not a slider name (over {MAX_NAME} characters)")
        if not math.isfinite(v) or abs(v) > 100:
            raise ExplorerError(f"recipe edit {excerpt(k)} must be a finite number within +-100")
    dirs = d.get("directions", {})
    if not isinstance(dirs, dict) or not all(
        isinstance(v, list) and len(v) <= MAX_Z and all(_is_num(x) for x in v) for v in dirs.values()
    ):
        raise ExplorerError("recipe 'directions' must map slider names to lists of numbers")
    if len(dirs) > MAX_SESSION_DIRECTIONS:
        raise ExplorerError(
            f"recipe 'directions' must hold at most {MAX_SESSION_DIRECTIONS} prompt directions (it has {len(dirs)})"
        )
    for name in dirs:
        check_direction_name(name)
    steps = d["steps"]
    if not _is_num(steps) or not math.isfinite(steps) or steps != int(steps) or not 1 <= steps <= MAX_STEPS:
        raise ExplorerError(f"recipe 'steps' must be an integer in 1..{MAX_STEPS}")
    check_seed(d["seed"])
    cam = d.get("camera")
    if cam is not None:
        if not isinstance(cam, dict) or any(
            k not in cam or not _is_num(cam[k]) or not math.isfinite(cam[k]) for k in ("azimuth", "elevation", "radius")
        ):
            raise ExplorerError("recipe 'camera' must be null or {azimuth, elevation, radius} numbers")
        for k, (lo, hi) in api.camera_limits().items():  # the ranges the page's sliders offer
            if not lo <= cam[k] <= hi:
                raise ExplorerError(f"recipe 'camera' {k} must be within {lo:g}..{hi:g} (got {cam[k]:g})")
    if d.get("sampler", "ddim") not in ("ddim", "dpmpp_2m"):
        raise ExplorerError("recipe 'sampler' must be ddim or dpmpp_2m")
    if not isinstance(d.get("source", ""), str) or not isinstance(d.get("checkpoint", ""), str | None):
        raise ExplorerError("recipe 'source' and 'checkpoint' must be text")
    return d


def replay(ex: Explorer, recipe: dict, key: str | None = None) -> tuple[np.ndarray, Loaded, list[str]]:
    """Decode a validated recipe on checkpoint ``key`` (default: the recipe's own when it may be opened, else the
    explorer's default) -> (image (H,W,3) uint8, the loaded checkpoint as the session sees it (with the recipe's
    prompt directions), warnings). Nothing of the recipe is registered on the shared checkpoint or written to disk:
    its prompt directions are in the returned ``Loaded``'s directions only (``Editor.session``)."""
    notes = []
    want = recipe.get("checkpoint")
    if key is None:
        try:
            key = ex.check_choice(want) if want else ex.default_key
        except ExplorerError:
            notes.append(f"recipe checkpoint {excerpt(want)} cannot be opened here; replaying on '{ex.default_key}'")
            key = ex.default_key
    shared = ex.get(key)
    full = int(shared.model.cfg.diffusion.sample_steps)
    if int(recipe["steps"]) > full:
        raise ExplorerError(f"recipe 'steps' must be an integer in 1..{full} (this checkpoint's full quality)")
    extra = ex.session_directions(shared, recipe.get("directions"))  # checks the name, length and digest of each
    m = ex.editor.session(shared, {"directions": extra})
    if len(recipe["latent"]) != m.model.z_dim:
        raise ExplorerError(
            f"recipe latent has {len(recipe['latent'])} numbers; this checkpoint's z has {m.model.z_dim}"
        )
    if recipe.get("fingerprint") and recipe["fingerprint"] != m.assets.fingerprint:
        notes.append("the recipe was made with other weights; the image will differ from the original")
    unknown = [k for k in recipe["edits"] if k not in m.directions]
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise ExplorerError(
            f"recipe edits unknown to this checkpoint: {', '.join(excerpt(k) for k in unknown[:3])}{more}"
        )
    cam = recipe.get("camera")
    camera = api.Camera.from_dict(cam) if cam else None
    if camera is not None and not m.model.uses_cameras:
        notes.append("this checkpoint has no cameras; the recipe's camera is ignored")
        camera = None
    z = ex.latent(m, recipe["latent"], recipe["edits"])
    image = api.to_uint8(
        api.decode(
            m.model,
            z,
            camera=camera if camera is not None else m.camera,
            steps=int(recipe["steps"]),
            seed=check_seed(recipe["seed"]),
            sampler=recipe.get("sampler", "ddim"),
        )
    )[0]
    return image, m, notes


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _reject_constant(name: str):
    return float("nan")  # NaN / Infinity literals become NaN and are refused by the checks above


def load_into(ex: Explorer, state: dict, path_or_text) -> tuple[dict, np.ndarray, list[str]]:
    """Replay a recipe on the editor's checkpoint and make it the editor's state -> (state, image, warnings)."""
    recipe = read_recipe(path_or_text)
    key = state["ckpt"] if state else ex.default_key
    image, m, notes = replay(ex, recipe, key)
    if recipe.get("checkpoint") not in (None, key):
        notes.insert(0, f"the recipe names checkpoint {excerpt(recipe['checkpoint'])}; it was replayed on '{key}'")
    z0 = [float(v) for v in np.asarray(recipe["latent"], dtype=np.float32)]
    recon = ex.decode(m, ex.latent(m, z0, {}), int(recipe["steps"]), recipe["seed"])[0]
    edits = {k: float(v) for k, v in recipe["edits"].items()}
    source = " ".join(str(recipe.get("source") or "no source").split())
    if len(source) > MAX_SOURCE:
        source = source[: MAX_SOURCE - 1] + "…"
    new = {
        **ex.new_state(key),
        "z_orig": z0,
        "z0": z0,
        "edits": edits,
        "source": f"recipe ({source})",
        "input": None,
        "recon": recon,
    }
    mine = {k: v for k, v in ex.prompt_directions(m, edits).items() if k not in ex.get(key).directions}
    if mine:  # the recipe's prompt directions: this session's only
        new["directions"] = mine
    return new, image, notes
