"""What the explorer's parts share: slider layout constants, the user-facing error, a loaded checkpoint (model,
assets and named directions on the fixed slider slots) and small validators."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from soda import api, precompute

SECTION_SLOTS = 9  # sections with sliders (a UNet of up to 4 levels has 9 stages)
COMPONENTS = 3  # principal directions per section
NAMED_SLOTS = 12  # label sliders
N_SLOTS = SECTION_SLOTS * COMPONENTS + NAMED_SLOTS
SLIDER_SPAN = 3.0  # sliders run from -3 to +3 std
HISTORY = 50
MAX_SEED = 2**31 - 1

Progress = Callable[[float, str], None]


class ExplorerError(ValueError):
    """A problem the user can fix; the message is shown in the UI as it is."""


@dataclass
class Loaded:
    """A model and its explorer assets."""

    key: str
    model: torch.nn.Module
    assets: precompute.ExplorerAssets
    directions: dict  # edit name -> (z_dim,) direction, or a slider with move(z, amount) (soda.sliders.moves)
    slots: list[str | None]  # N_SLOTS edit names (None: slot unused)
    slot_labels: list[str]
    section_titles: list[str]  # one per latent section (the Mix panel)
    group_titles: list[str] = field(default_factory=list)  # one per row of COMPONENTS label-free sliders
    tsne: torch.Tensor | None = None
    figures: dict = field(default_factory=dict)
    infos: dict[str, str] = field(default_factory=dict)  # edit name -> what it measurably does (one line)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def camera(self) -> api.Camera | None:
        """The camera of the editor (uploads and examples): the default camera on camera checkpoints."""
        return api.default_camera() if self.model.uses_cameras else None


def make_loaded(key: str, model, assets: precompute.ExplorerAssets) -> Loaded:
    """Name the directions and lay them out on the fixed slider slots."""
    from soda.model import stage_sections

    dirs: dict = {}
    slots: list[str | None] = [None] * N_SLOTS
    labels = [f"slot {i}" for i in range(N_SLOTS)]
    measured = assets.meta.get("slider_effects") or {}  # soda.sliders.ensure_measured (python -m soda.precompute)
    infos: dict[str, str] = {}
    # the label-free sliders (soda.sliders.labelfree: found in the latents without labels), COMPONENTS per row; a
    # cache from before them falls back to each section's principal directions
    free = assets.free_sliders() if assets.free_dirs is not None else None
    if free is not None:
        n = min(len(free), SECTION_SLOTS * COMPONENTS)
        rows = [(i, f"free{i + 1}", f"D{i + 1}", free[i]) for i in range(n)]
        got_of = measured.get("free", {})
    else:
        rows = [
            (k * COMPONENTS + c, f"section{k}.pc{c + 1}", f"S{k} PC{c + 1}", assets.section_dirs[k, c])
            for k in range(min(SECTION_SLOTS, assets.section_dirs.shape[0]))
            for c in range(min(COMPONENTS, assets.section_dirs.shape[1]))
        ]
        got_of = measured.get("sections", {})
    for slot, name, label, v in rows:
        if not hasattr(v, "move") and float(v.norm()) == 0.0:
            continue
        dirs[name] = v
        slots[slot] = name
        labels[slot] = label
        got = got_of.get(name)
        if got:  # labelled by the factor it measurably moves most
            if got.get("factor"):
                labels[slot] += f" · {got['factor'].replace('_', ' ')}"
            infos[name] = got["caption"]
    # a direction, or a z-dependent slider (soda.sliders.moves; api.move_along moves both)
    named = assets.named_sliders()
    for j, lab in enumerate(assets.named_labels[:NAMED_SLOTS]):
        name = f"label.{lab}"
        dirs[name] = named[j]
        slots[SECTION_SLOTS * COMPONENTS + j] = name
        labels[SECTION_SLOTS * COMPONENTS + j] = lab.replace("_", " ")  # as the captions say it ("floor hue +")
        if measured.get("named", {}).get(lab):
            infos[name] = measured["named"][lab]["caption"]
    # every section's principal directions stay edit names (recipes and the API), shown or not; listed after the
    # shown sliders
    for k in range(assets.section_dirs.shape[0]):
        for c in range(assets.section_dirs.shape[1]):
            if float(assets.section_dirs[k, c].norm()) > 0:
                dirs.setdefault(f"section{k}.pc{c + 1}", assets.section_dirs[k, c])
    levels = len(model.cfg.unet.channel_mult)
    reads = stage_sections(levels, model.n_sections)
    titles = []
    for k in range(model.n_sections):
        names = []
        for s, sec in enumerate(reads):
            if sec != k:
                continue
            if s < levels:
                names.append(f"down {model.res >> s}px")
            elif s == levels:
                names.append(f"middle {model.res >> (levels - 1)}px")
            else:
                names.append(f"up {model.res >> (2 * levels - s)}px")
        titles.append(f"Section {k} ({', '.join(names)})")
    if free is not None:  # the label-free sliders' rows are numbered, not sections
        spans = [(COMPONENTS * g + 1, min(COMPONENTS * g + COMPONENTS, len(free))) for g in range(SECTION_SLOTS)]
        groups = [f"Directions {a}-{b}" if b > a else f"Direction {a}" for a, b in spans]
    else:
        groups = titles
    return Loaded(key, model, assets, dirs, slots, labels, titles, infos=infos, group_titles=groups)


def change_map_image(m: Loaded, tile: int = 48) -> np.ndarray | None:
    """The label-free sliders' change maps (soda.sliders.labelfree) as one strip of heat-map tiles, each labelled
    with its slider's name (D1, D2, ...) -> (H, W, 3) uint8; None without maps."""
    from PIL import Image, ImageDraw

    maps = m.assets.free_maps
    if maps is None or maps.shape[0] == 0:
        return None
    v = maps.clamp(0, 1).numpy()
    heat = np.stack([np.clip(1.5 * v, 0, 1), np.clip(1.5 * v - 0.5, 0, 1) ** 0.8, np.clip(2 * v - 1.2, 0, 1)], -1)
    pad, label = 2, 12
    canvas = Image.new("RGB", (maps.shape[0] * (tile + pad) + pad, tile + label + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, h in enumerate(heat):
        img = Image.fromarray((h * 255).astype(np.uint8)).resize((tile, tile), Image.NEAREST)
        x = pad + i * (tile + pad)
        canvas.paste(img, (x, label))
        draw.text((x + 2, 0), f"D{i + 1}", fill=(0, 0, 0))
    return np.asarray(canvas)


def factors_text(m: Loaded, i: int) -> str:
    f = m.assets.map_factors
    if f is None:
        return ""
    return " (" + ", ".join(f"{n}={int(v)}" for n, v in zip(m.assets.factor_names, f[i].tolist(), strict=True)) + ")"


def section_indices(sections, n: int) -> list[int] | None:
    """Checkbox labels like 'Section 2 (...)' or ints -> sorted indices; None or empty -> None (all sections)."""
    if not sections:
        return None
    out = set()
    for s in sections:
        hit = re.match(r"(?:section\s*)?(\d+)", str(s).strip(), re.IGNORECASE)
        if not hit or not 0 <= int(hit.group(1)) < n:
            raise ExplorerError(f"unknown section '{s}' (this checkpoint has sections 0..{n - 1})")
        out.add(int(hit.group(1)))
    return sorted(out)


def clip(v, lo: float, hi: float, what: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ExplorerError(f"{what} must be a number") from None
    if not math.isfinite(f) or not lo <= f <= hi:
        raise ExplorerError(f"{what} must be between {lo:g} and {hi:g}")
    return f


def check_seed(seed) -> int:
    try:
        s = float(seed)
    except (TypeError, ValueError):
        raise ExplorerError("the decoder seed must be an integer") from None
    if not math.isfinite(s) or s != int(s) or not 0 <= s <= MAX_SEED:
        raise ExplorerError(f"the decoder seed must be an integer in 0..{MAX_SEED}")
    return int(s)


def psnr(a: np.ndarray | None, b: np.ndarray) -> float | None:
    """PSNR in dB of two uint8 images (None without a reference)."""
    if a is None:
        return None
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)
