"""The explorer: widget values in, images / figures / files out. Calls soda.api and soda.precompute; builds no widgets.

One ``Explorer`` per process holds the models (shared, read-only, at most ``max_loaded`` at once) and their cached
assets. Everything that belongs to one user lives in a plain ``state`` dict that the UI keeps in ``gr.State``:

    {"ckpt": key, "z_orig": [...], "z0": [...], "edits": {name: amount}, "history": [(z0, edits), ...],
     "source": "example 3: ...", "input": (H,W,3) uint8 or None}

The edited latent is ``z0 + sum(amount * direction[name])``: directions are per-section principal directions
(``section{k}.pc{c}``) and label directions (``label.<name>``), both in units of the data's std along them.
Errors meant for the user are raised as ``ExplorerError``; warnings are returned as lists of strings.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from soda import api, precompute
from soda.config import ConfigError

from . import media
from .uploads import UploadError, read_image

SECTION_SLOTS = 9  # sections with sliders (a UNet of up to 4 levels has 9 stages)
COMPONENTS = 3  # principal directions per section
NAMED_SLOTS = 12  # label sliders
N_SLOTS = SECTION_SLOTS * COMPONENTS + NAMED_SLOTS
SLIDER_SPAN = 3.0  # sliders run from -3 to +3 std
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
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
    directions: dict[str, torch.Tensor]  # edit name -> (z_dim,)
    slots: list[str | None]  # N_SLOTS edit names (None: slot unused)
    slot_labels: list[str]
    section_titles: list[str]
    tsne: torch.Tensor | None = None
    figures: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def camera(self) -> api.Camera | None:
        """The camera of the editor (uploads and examples): the default camera on camera checkpoints."""
        return api.default_camera() if self.model.uses_cameras else None


def discover_checkpoints(root: str | Path = "assets/checkpoints") -> list[str]:
    """Checkpoint folders under ``root`` (those with a config.json), as paths relative to the working directory."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(str(p.parent) for p in root.glob("*/config.json"))


class Explorer:
    """Models, assets and the operations of every panel (see the module docstring)."""

    def __init__(self, checkpoint: str, allowed: list[str] | None = None, hub_ids: list[str] | None = None,
                 n_map: int = 4000, n_examples: int = 16, device: str = "cpu", max_loaded: int = 2):
        self.default_key = str(checkpoint)
        self.allowed = list(dict.fromkeys([self.default_key, *(allowed or []), *(hub_ids or [])]))
        self.n_map, self.n_examples, self.device, self.max_loaded = n_map, n_examples, device, max_loaded
        self._loaded: OrderedDict[str, Loaded] = OrderedDict()
        self._load_lock = threading.Lock()
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.calls: Counter = Counter()  # how often each operation ran (tests check that drags do not flood)

    # ---------------------------------------------------------------------------------------------------------
    # Checkpoints
    # ---------------------------------------------------------------------------------------------------------
    def check_choice(self, key: str) -> str:
        """A checkpoint the browser may open: an allow-listed entry or a hub id, never an arbitrary local path."""
        key = (key or "").strip()
        if key in self.allowed:
            return key
        if HUB_ID.fullmatch(key) and ".." not in key and not Path(key).exists():
            return key
        raise ExplorerError(
            f"'{key}' is not one of the listed checkpoints or a hub id (owner/name). Local folders can only be "
            "opened from the command line: python app.py --checkpoint PATH"
        )

    def get(self, key: str | None = None, progress: Progress | None = None) -> Loaded:
        """The loaded checkpoint ``key`` (loading it, and computing its assets on first use)."""
        key = key or self.default_key
        with self._load_lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            try:
                model = api.load_model(key, self.device)
            except ConfigError as e:
                raise ExplorerError(str(e)) from None
            if not hasattr(model, "uses_cameras"):
                raise ExplorerError(f"'{key}' is not a SODA checkpoint (the explorer needs a SODA model)")
            try:
                assets = precompute.load_or_compute(model, self.n_examples, self.n_map, COMPONENTS,
                                                    progress=progress)
            except (FileNotFoundError, ValueError) as e:
                raise ExplorerError(str(e)) from None
            loaded = _make_loaded(key, model, assets)
            self._loaded[key] = loaded
            while len(self._loaded) > self.max_loaded:
                self._loaded.popitem(last=False)
            return loaded

    def card(self, key: str) -> str:
        """Markdown model card: a summary of the config and the checkpoint's README (front matter removed)."""
        m = self.get(key)
        model, cfg = m.model, m.model.cfg
        full = getattr(model, "full_config", None)
        n_params = sum(p.numel() for p in model.parameters())
        data = f"{full.data.dataset} ({full.data.mode}, {cfg.res} px)" if full is not None else f"{cfg.res} px"
        cams = "yes (azimuth / elevation / radius)" if model.uses_cameras else "no"
        lines = [
            f"**{Path(key).name or key}** · data: {data} · z: {model.z_dim} = {model.n_sections} sections x "
            f"{model.section_dim} · cameras: {cams} · {n_params / 1e6:.2f} M parameters · steps: "
            f"{cfg.diffusion.sample_steps} full / {cfg.diffusion.preview_steps} preview · device: {self.device}, "
            f"{torch.get_num_threads()} threads",
        ]
        readme = Path(model.checkpoint_dir) / "README.md"
        if readme.is_file():
            text = readme.read_text(errors="replace")
            if text.startswith("---"):
                end = text.find("\n---", 3)
                text = text[end + 4 :] if end > 0 else text
            lines.append(text.strip())
        else:
            lines.append("_This checkpoint has no README.md model card._")
        return "\n\n".join(lines)

    # ---------------------------------------------------------------------------------------------------------
    # State and latents
    # ---------------------------------------------------------------------------------------------------------
    def new_state(self, key: str | None = None) -> dict:
        return {"ckpt": key or self.default_key, "z_orig": None, "z0": None, "edits": {}, "history": [],
                "source": "", "input": None}

    def _require(self, state: dict) -> Loaded:
        if not state or state.get("z0") is None:
            raise ExplorerError("pick an example or upload an image first")
        return self.get(state["ckpt"])

    def edits_from(self, m: Loaded, values) -> dict[str, float]:
        """Slider values (N_SLOTS numbers, in slot order) -> {edit name: amount} for the non-zero ones."""
        out = {}
        for name, v in zip(m.slots, list(values or [])[:N_SLOTS], strict=False):
            if name is None or v is None:
                continue
            v = float(v)
            if not math.isfinite(v):
                raise ExplorerError(f"slider '{name}' has a non-finite value")
            if v != 0.0:
                out[name] = v
        return out

    def slider_values(self, m: Loaded, edits: dict[str, float]) -> list[float]:
        """{edit name: amount} -> N_SLOTS slider values."""
        return [float(edits.get(name, 0.0)) if name else 0.0 for name in m.slots]

    def latent(self, m: Loaded, z0, edits: dict[str, float]) -> torch.Tensor:
        """Base latent and edits -> (1, z_dim)."""
        z = torch.as_tensor(np.asarray(z0, dtype=np.float32)).reshape(1, -1)
        for name in sorted(edits):
            if name not in m.directions:
                raise ExplorerError(f"unknown edit '{name}' for this checkpoint")
            z = api.move_along(z, m.directions[name], float(edits[name]))
        return z

    def steps(self, m: Loaded, quality: str) -> int:
        d = m.model.cfg.diffusion
        return int(d.preview_steps if quality == "preview" else d.sample_steps)

    def decode(self, m: Loaded, z: torch.Tensor, steps: int, seed, camera: api.Camera | None = None) -> np.ndarray:
        """(B, z_dim) -> (B,H,W,3) uint8, through a small cache (sliders often come back to the same values)."""
        seed = check_seed(seed)
        cam = camera if camera is not None else m.camera
        out = []
        todo = []
        for i in range(z.shape[0]):
            k = (m.key, z[i].numpy().tobytes(), int(steps), seed, cam)
            with self._cache_lock:
                hit = self._cache.get(k)
                if hit is not None:
                    self._cache.move_to_end(k)
            out.append(hit)
            if hit is None:
                todo.append((i, k))
        if todo:
            idx = [i for i, _ in todo]
            imgs = api.to_uint8(api.decode(m.model, z[idx], camera=cam, steps=int(steps), seed=seed))
            with self._cache_lock:
                for (i, k), img in zip(todo, imgs, strict=True):
                    out[i] = img
                    self._cache[k] = img
                while len(self._cache) > 256:
                    self._cache.popitem(last=False)
        return np.stack(out)

    def _encode(self, m: Loaded, img: np.ndarray) -> torch.Tensor:
        return api.encode(m.model, api.from_uint8(img[None]), camera=m.camera)

    # ---------------------------------------------------------------------------------------------------------
    # Explore / edit
    # ---------------------------------------------------------------------------------------------------------
    def _start(self, state: dict, m: Loaded, z: torch.Tensor, source: str, image: np.ndarray | None,
               seed, quality: str) -> dict:
        """Make z the new base latent of the editor (edits cleared) and render its reconstruction."""
        z0 = z.reshape(-1).tolist()
        new = {**self.new_state(m.key), "z_orig": z0, "z0": z0, "source": source, "input": image}
        recon = self.decode(m, z.reshape(1, -1), self.steps(m, quality), seed)[0]
        new["psnr"] = psnr(image, recon) if image is not None else None
        new["recon"] = recon
        return new

    def load_example(self, state: dict, index, seed, quality: str) -> dict:
        m = self.get(state["ckpt"])
        n = len(m.assets.example_captions)
        if index is None or not 0 <= int(index) < n:
            raise ExplorerError(f"example index must be in 0..{n - 1}")
        i = int(index)
        img = m.assets.examples[i]
        z = m.assets.example_latents[i : i + 1]
        return self._start(state, m, z, f"example {i}: {m.assets.example_captions[i]}", img, seed, quality)

    def load_upload(self, state: dict, path, seed, quality: str) -> tuple[dict, list[str]]:
        """Uploaded file -> new editor state and warnings (out-of-distribution, default camera)."""
        m = self.get(state["ckpt"])
        if not path:
            raise ExplorerError("no file was uploaded")
        try:
            img = read_image(path, m.model.res)
        except UploadError as e:
            raise ExplorerError(str(e)) from None
        self.calls["encode"] += 1
        z = self._encode(m, img)
        new = self._start(state, m, z, f"upload: {Path(str(path)).name}", img, seed, quality)
        notes = []
        d = float(m.assets.mahalanobis(z)[0])
        new["ood"] = d
        if d > m.assets.ood_threshold:
            notes.append(
                f"This image looks unlike the training data (latent distance {d:.1f}; 99% of held-out data is "
                f"below {m.assets.ood_threshold:.1f}). Edits and reconstructions may be poor; try Refine."
            )
        return new, notes

    def preview(self, state: dict, values, seed) -> np.ndarray:
        """Fast decode (preview steps) of the edited latent while a slider moves."""
        m = self._require(state)
        self.calls["preview"] += 1
        z = self.latent(m, state["z0"], self.edits_from(m, values))
        return self.decode(m, z, self.steps(m, "preview"), seed)[0]

    def render(self, state: dict, values, seed, quality: str) -> tuple[dict, np.ndarray]:
        """Full decode of the edited latent (slider released); the previous edits go on the undo stack."""
        m = self._require(state)
        self.calls["render"] += 1
        edits = self.edits_from(m, values)
        state = dict(state)
        if edits != state["edits"]:
            state["history"] = ([*state["history"], (state["z0"], state["edits"])])[-HISTORY:]
            state["edits"] = edits
        z = self.latent(m, state["z0"], edits)
        return state, self.decode(m, z, self.steps(m, quality), seed)[0]

    def apply_edits(self, state: dict, edits, seed, quality: str) -> tuple[dict, np.ndarray]:
        """Set the edits from a dict or JSON text {edit name: amount} and render (the API's slider-free edit)."""
        import json

        m = self._require(state)
        if isinstance(edits, str):
            try:
                edits = json.loads(edits or "{}")
            except ValueError as e:
                raise ExplorerError(f"edits must be a JSON object of slider name -> amount ({e})") from None
        if not isinstance(edits, dict):
            raise ExplorerError("edits must be a JSON object of slider name -> amount")
        unknown = [k for k in edits if k not in m.directions]
        if unknown:
            raise ExplorerError(f"unknown sliders {unknown[:5]}; this checkpoint has: {', '.join(m.directions)}")
        for k, v in edits.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > 100:
                raise ExplorerError(f"edit '{k}' must be a finite number within +-100")
        return self.render(state, self.slider_values(m, edits), seed, quality)

    def reset(self, state: dict, seed, quality: str) -> tuple[dict, list[float], np.ndarray]:
        m = self._require(state)
        state = {**state, "history": [*state["history"], (state["z0"], state["edits"])][-HISTORY:],
                 "z0": state["z_orig"], "edits": {}}
        z = self.latent(m, state["z0"], {})
        return state, self.slider_values(m, {}), self.decode(m, z, self.steps(m, quality), seed)[0]

    def undo(self, state: dict, seed, quality: str) -> tuple[dict, list[float], np.ndarray]:
        m = self._require(state)
        if not state["history"]:
            raise ExplorerError("nothing to undo")
        z0, edits = state["history"][-1]
        state = {**state, "history": state["history"][:-1], "z0": z0, "edits": dict(edits)}
        z = self.latent(m, z0, edits)
        return state, self.slider_values(m, edits), self.decode(m, z, self.steps(m, quality), seed)[0]

    def traversal(self, state: dict, slot_label: str, span, n, seed, quality: str) -> np.ndarray:
        """One slider swept from -span to +span in n frames -> a strip image (H, n*W + gaps, 3)."""
        m = self._require(state)
        if slot_label not in m.slot_labels:
            raise ExplorerError("pick a slider to traverse")
        name = m.slots[m.slot_labels.index(slot_label)]
        n = int(_clip(n, 2, 16, "frames"))
        span = float(_clip(span, 0.1, 10.0, "range"))
        edits = dict(state["edits"])
        edits.pop(name, None)
        z = self.latent(m, state["z0"], edits)
        zs = api.traverse(z, m.directions[name], np.linspace(-span, span, n).tolist())
        return media.strip(list(self.decode(m, zs, self.steps(m, quality), seed)))

    def refine(self, state: dict, steps, lr, seed, quality: str, every: int = 5) -> Iterator[tuple]:
        """Optimise the base latent to reconstruct the input better. Yields (step, total, new state, recon) after
        every optimiser step; state and recon are None except every ``every`` steps and at the end."""
        m = self._require(state)
        if state.get("input") is None:
            raise ExplorerError("refine needs an input image (pick an example or upload one)")
        steps = int(_clip(steps, 1, 500, "refine steps"))
        lr = float(_clip(lr, 1e-4, 1.0, "learning rate"))
        x = api.from_uint8(np.asarray(state["input"], dtype=np.uint8)[None])
        z = torch.tensor(state["z0"], dtype=torch.float32).reshape(1, -1)
        self.calls["refine"] += 1
        for i, z_i, _ in api.refine_latent(m.model, x, z, steps=steps, lr=lr, seed=check_seed(seed), camera=m.camera):
            if i % every and i != steps:
                yield i, steps, None, None
                continue
            recon = self.decode(m, z_i, self.steps(m, quality), seed)[0]
            new = {**state, "z0": z_i.reshape(-1).tolist(), "recon": recon,
                   "history": [*state["history"], (state["z0"], state["edits"])][-HISTORY:],
                   "psnr": psnr(state["input"], recon)}
            yield i, steps, new, recon

    # ---------------------------------------------------------------------------------------------------------
    # Interpolate / mix / novel views
    # ---------------------------------------------------------------------------------------------------------
    def pick_choices(self, m: Loaded) -> list[str]:
        return ["current edit"] + [f"example {i}: {c}" for i, c in enumerate(m.assets.example_captions)]

    def current(self, state: dict) -> tuple[Loaded, torch.Tensor]:
        """The editor's checkpoint and its edited latent (1, z_dim) with the committed edits."""
        m = self._require(state)
        return m, self.latent(m, state["z0"], state["edits"])

    def _pick(self, state: dict, m: Loaded, choice: str) -> torch.Tensor:
        if choice == "current edit" or not choice:
            return self.current(state)[1]
        hit = re.match(r"example (\d+)", str(choice))
        if not hit or int(hit.group(1)) >= len(m.assets.example_captions):
            raise ExplorerError(f"unknown image choice '{choice}'")
        i = int(hit.group(1))
        return m.assets.example_latents[i : i + 1]

    def interpolate(self, state: dict, a: str, b: str, n, method: str, sections, seed,
                    quality: str) -> tuple[list[np.ndarray], str, str | None]:
        """-> (frames, GIF path, MP4 path or None)."""
        m = self.get(state["ckpt"])
        n = int(_clip(n, 2, 32, "frames"))
        secs = _section_indices(sections, m.model.n_sections)
        za, zb = self._pick(state, m, a), self._pick(state, m, b)
        try:
            path = api.interpolate(m.model, za[0], zb[0], n, method, secs)
        except ValueError as e:
            raise ExplorerError(str(e)) from None
        frames = list(self.decode(m, path, self.steps(m, quality), seed))
        loop = frames + frames[-2:0:-1]  # there and back
        return frames, media.write_gif(loop, "interpolation"), media.write_mp4(loop, "interpolation")

    def mix(self, state: dict, a: str, b: str, from_b, seed, quality: str) -> list[np.ndarray]:
        """-> [A, B, A with the chosen sections from B] images."""
        m = self.get(state["ckpt"])
        secs = set(_section_indices(from_b, m.model.n_sections) or [])
        za, zb = self._pick(state, m, a), self._pick(state, m, b)
        mixed = api.mix_sections(m.model, za[0], zb[0], [k in secs for k in range(m.model.n_sections)])
        return list(self.decode(m, torch.cat([za, zb, mixed[None]]), self.steps(m, quality), seed))

    def check_camera(self, m: Loaded, azimuth, elevation, radius) -> tuple[api.Camera, list[str]]:
        if not m.model.uses_cameras:
            raise ExplorerError("this checkpoint was trained without cameras: novel views are not available")
        vals = {"azimuth": azimuth, "elevation": elevation, "radius": radius}
        notes = []
        for k, v in vals.items():
            if v is None or not math.isfinite(float(v)):
                raise ExplorerError(f"camera {k} must be a number")
            lo, hi = api.camera_limits()[k]
            if not lo <= float(v) <= hi:
                notes.append(f"camera {k} {float(v):g} is outside the training range {lo:g}..{hi:g}")
        return api.Camera(float(azimuth), float(elevation), float(radius)), notes

    def novel_view(self, state: dict, azimuth, elevation, radius, seed, quality: str):
        """The current edit seen from another camera -> (image, warnings)."""
        m, z = self.current(state)
        cam, notes = self.check_camera(m, azimuth, elevation, radius)
        return self.decode(m, z, self.steps(m, quality), seed, camera=cam)[0], notes

    def orbit(self, state: dict, n, elevation, radius, seed, quality: str, batch: int = 4) -> Iterator:
        """An orbit of the current edit: yields (done, total, frames so far, None), then (n, n, frames, GIF path)."""
        m, z = self.current(state)
        cam, _ = self.check_camera(m, api.default_camera().azimuth, elevation, radius)
        n = int(_clip(n, 2, 64, "frames"))
        self.calls["orbit"] += 1
        cams = api.orbit_cameras(n, elevation=cam.elevation, radius=cam.radius)
        frames: list[np.ndarray] = []
        steps = self.steps(m, quality)
        for i in range(0, n, batch):
            chunk = cams[i : i + batch]
            rays = torch.cat([api.camera_rays(m.model, c) for c in chunk])
            imgs = api.to_uint8(api.decode(m.model, z.expand(len(chunk), -1), rays=rays, steps=steps,
                                           seed=check_seed(seed)))
            frames.extend(imgs)
            yield len(frames), n, frames, None
        yield n, n, frames, media.write_gif(frames, "orbit", fps=12)

    # ---------------------------------------------------------------------------------------------------------
    # Latent map
    # ---------------------------------------------------------------------------------------------------------
    def map_coords(self, m: Loaded, view: str, progress: Progress | None = None) -> torch.Tensor:
        if view == "t-SNE":
            with m.lock:
                if m.tsne is None:
                    if progress:
                        progress(0.0, f"t-SNE of {m.assets.map_latents.shape[0]} latents (cached after this)")
                    m.tsne = precompute.tsne_map(m.assets)
            return m.tsne
        return m.assets.map_pca

    def map_figure(self, key: str, view: str, color_by: str, progress: Progress | None = None) -> dict:
        """Plotly figure (as a dict) of the map latents, coloured by a factor; trace 0 holds the points."""
        m = self.get(key)
        fk = (view, color_by)
        if fk in m.figures:
            return m.figures[fk]
        self.calls["map"] += 1
        xy = self.map_coords(m, view, progress).numpy()
        a = m.assets
        marker: dict = {"size": 5, "opacity": 0.75}
        hover = "#%{pointIndex}"
        custom = None
        if a.map_factors is not None:
            custom = a.map_factors.numpy().tolist()
            hover += "".join(f"<br>{n}=%{{customdata[{j}]}}" for j, n in enumerate(a.factor_names))
            if color_by in a.factor_names:
                j = a.factor_names.index(color_by)
                marker |= {"color": a.map_factors[:, j].tolist(), "colorscale": "Turbo", "showscale": True,
                           "colorbar": {"title": {"text": color_by}, "thickness": 12}}
        trace = {"type": "scatter", "mode": "markers", "x": np.round(xy[:, 0], 4).tolist(),
                 "y": np.round(xy[:, 1], 4).tolist(), "marker": marker, "hovertemplate": hover + "<extra></extra>",
                 "name": "held-out latents"}
        if custom is not None:
            trace["customdata"] = custom
        axis = "PC" if view == "PCA" else "t-SNE "
        fig = {"data": [trace], "layout": {
            "height": 480, "margin": {"l": 50, "r": 10, "t": 30, "b": 45}, "showlegend": False,
            "clickmode": "event", "dragmode": "pan", "hovermode": "closest",
            "title": {"text": f"{len(xy)} held-out latents, {view}", "font": {"size": 13}},
            "xaxis": {"title": {"text": f"{axis}1"}, "zeroline": False},
            "yaxis": {"title": {"text": f"{axis}2"}, "zeroline": False},
        }}
        m.figures[fk] = fig
        return fig

    def map_marker(self, state: dict, view: str, values=None) -> list[float] | None:
        """Where the edited latent (slider ``values`` when given, else the committed edits) sits on the map -> [x, y]
        (None before anything is loaded)."""
        if not state or state.get("z0") is None:
            return None
        m = self.get(state["ckpt"])
        edits = self.edits_from(m, values) if values is not None else state["edits"]
        z = self.latent(m, state["z0"], edits)
        if view == "t-SNE":
            if m.tsne is None:
                return None
            d = torch.cdist(z, m.assets.map_latents)[0]
            near = d.topk(min(5, d.numel()), largest=False)
            w = 1.0 / (near.values + 1e-6)
            xy = (m.tsne[near.indices] * w[:, None]).sum(0) / w.sum()
        else:
            xy = m.assets.pca(z)[0]
        return [round(float(xy[0]), 4), round(float(xy[1]), 4)]

    def map_click(self, state: dict, view: str, kind: str, index, x, y, seed, quality: str) -> dict:
        """A click on the map: a point loads that latent; empty space moves the current latent there (PCA) or
        loads the nearest point (t-SNE, which has no inverse)."""
        m = self.get(state["ckpt"])
        self.calls["map_click"] += 1
        n = m.assets.map_latents.shape[0]
        if kind == "point":
            if index is None or not 0 <= int(index) < n:
                raise ExplorerError(f"map point index must be in 0..{n - 1}")
            i = int(index)
            return self._start(state, m, m.assets.map_latents[i : i + 1], f"map point {i}{_factors_text(m, i)}",
                               None, seed, quality)
        if x is None or y is None or not (math.isfinite(float(x)) and math.isfinite(float(y))):
            raise ExplorerError("map click needs finite x and y")
        if view == "t-SNE":
            d = (self.map_coords(m, view) - torch.tensor([float(x), float(y)])).norm(dim=1)
            i = int(d.argmin())
            return self._start(state, m, m.assets.map_latents[i : i + 1], f"map point {i}{_factors_text(m, i)}",
                               None, seed, quality)
        _, z = self.current(state)
        delta = (torch.tensor([float(x), float(y)]) - m.assets.pca(z)[0]) @ m.assets.pca_axes[:2]  # (z_dim,)
        z0 = (torch.tensor(state["z0"], dtype=torch.float32) + delta).tolist()
        new = {**state, "z0": z0, "history": [*state["history"], (state["z0"], state["edits"])],
               "source": f"{state['source'].split(' -> ')[0]} -> moved on the map to PC ({float(x):.2f}, "
                         f"{float(y):.2f})"}
        new["recon"] = state.get("recon")
        return new

    def edited(self, state: dict, seed, quality: str) -> np.ndarray:
        """The committed edit at the chosen quality -> (H,W,3) uint8."""
        m, z = self.current(state)
        return self.decode(m, z, self.steps(m, quality), seed)[0]


# ------------------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------------------


def _make_loaded(key: str, model, assets: precompute.ExplorerAssets) -> Loaded:
    """Name the directions and lay them out on the fixed slider slots."""
    from soda.model import stage_sections

    dirs: dict[str, torch.Tensor] = {}
    slots: list[str | None] = [None] * N_SLOTS
    labels = [f"slot {i}" for i in range(N_SLOTS)]
    for k in range(min(SECTION_SLOTS, assets.section_dirs.shape[0])):
        for c in range(min(COMPONENTS, assets.section_dirs.shape[1])):
            v = assets.section_dirs[k, c]
            if float(v.norm()) == 0.0:
                continue
            name = f"section{k}.pc{c + 1}"
            dirs[name] = v
            slots[k * COMPONENTS + c] = name
            labels[k * COMPONENTS + c] = f"S{k} PC{c + 1}"
    for j, lab in enumerate(assets.named_labels[:NAMED_SLOTS]):
        name = f"label.{lab}"
        dirs[name] = assets.named_dirs[j]
        slots[SECTION_SLOTS * COMPONENTS + j] = name
        labels[SECTION_SLOTS * COMPONENTS + j] = lab
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
    return Loaded(key, model, assets, dirs, slots, labels, titles)


def _factors_text(m: Loaded, i: int) -> str:
    f = m.assets.map_factors
    if f is None:
        return ""
    return " (" + ", ".join(f"{n}={int(v)}" for n, v in zip(m.assets.factor_names, f[i].tolist(), strict=True)) + ")"


def _section_indices(sections, n: int) -> list[int] | None:
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


def _clip(v, lo: float, hi: float, what: str) -> float:
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
