"""soda.sliders: the named sliders' two sides, directions fitted on the sections that carry a factor, the DCI-style
importance per section, and the measured captions stored with the explorer assets and shown by the app."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from soda import sliders as SL
from soda.data import world
from soda.eval import edits as E


def synthetic(n=600, seed=0):
    """Latents of 4 sections x 3 dims: section 0 holds the object hue on a circle, section 2 the scale (linear),
    section 3 the shape (one coordinate per class, 3 used); section 1 is noise."""
    g = torch.Generator().manual_seed(seed)
    f = world.sample_factors(n, g, split="test")
    Z = 0.05 * torch.randn(n, 12, generator=g)
    ang = f[:, 2].float() * 2 * torch.pi / 10
    Z[:, 0], Z[:, 1] = Z[:, 0] + ang.cos(), Z[:, 1] + ang.sin()
    Z[:, 6] += f[:, 3].float() / 4
    for c in range(3):
        Z[:, 9 + c] += (f[:, 4] == c).float()
    Z[:, 3:6] += torch.randn(n, 3, generator=g)
    return Z, f


def test_side_labels():
    f = torch.tensor([[0, 0, h, 7, 0, o] for h, o in zip([7, 9, 2, 4, 0, 5], [14, 0, 3, 14, 0, 7], strict=True)])
    f[3, 4] = 2  # a sphere
    y, use = SL.side_labels(E.spec_for_label("object_hue +"), f)  # + towards 7, - towards 2
    assert y.tolist() == [True, True, False, False, False, True]
    y, use = SL.side_labels(E.spec_for_label("orientation +"), f)
    assert use.tolist() == [True, True, True, False, True, True]  # the sphere's orientation is not used
    y0, use0 = SL.side_labels(E.spec_for_label("orientation +"), f, original=True)
    assert use0.all()  # the explorer's original labels: every row, upper half of the values
    y, _ = SL.side_labels(E.spec_for_label("shape: sphere"), f)
    assert y.tolist() == [False, False, False, True, False, False]


def test_section_importance_finds_the_carrying_sections():
    Z, f = synthetic()
    imp = SL.section_importance(Z, f, 4, n_max=400)
    assert imp.shape == (4, 6) and np.allclose(imp.sum(0)[[2, 3, 4]], 1)
    assert imp[:, 2].argmax() == 0 and imp[:, 3].argmax() == 2 and imp[:, 4].argmax() == 3
    mask = SL.carrier_mask(imp, 2, 3)
    assert mask.tolist()[:3] == [True] * 3 and not mask[3:].any()


@pytest.mark.parametrize("method", ["logistic", "sections", "mean"])
def test_directions_move_the_factor_and_are_one_std_long(method):
    Z, f = synthetic()
    imp = SL.section_importance(Z, f, 4, n_max=400)
    specs = [E.spec_for_label(x) for x in ("object_hue +", "scale +", "shape: cylinder")]
    D, kept = SL.fit_directions(Z, f, specs, method, imp, 3)
    assert kept == specs and D.shape == (3, 12)
    X = Z - Z.mean(0)
    for d in D:  # one std of all the data along the direction
        u = d / d.norm()
        assert float((X @ u).std()) == pytest.approx(float(d.norm()), rel=1e-3)
    hue = D[0, :2] / D[0, :2].norm()
    blue = torch.tensor([np.cos(0.7 * 2 * np.pi), np.sin(0.7 * 2 * np.pi)]).float()
    assert float(hue @ blue) > 0.9  # points at blue on the hue circle
    assert D[1, 6] > 0 and D[2, 10] > 0  # larger; towards the cylinder's coordinate
    if method != "logistic":  # zero outside the carrying sections
        assert torch.all(D[0, 3:] == 0) and torch.all(D[1, :6] == 0) and torch.all(D[2, :9] == 0)


def test_a_slider_without_both_sides_in_the_data_is_left_out():
    Z, f = synthetic(60)
    f[:, 4] = 0  # cubes only
    D, kept = SL.fit_directions(Z, f, E.default_specs(), "logistic")
    assert [s.label for s in kept] == ["floor_hue +", "wall_hue +", "object_hue +", "scale +", "orientation +"]


def test_captions():
    spec = E.spec_for_label("object_hue +")
    assert SL.caption(0.91, 0.88, spec) == "object hue to blue (- yellow): moves it in 91%, keeps the rest in 88%"
    assert SL.caption(0.3, 0.95, spec).startswith("weak: ")
    assert SL.caption(None, 0.95, E.spec_for_label("shape: sphere")).startswith("weak: shape: sphere: moves it in n/a")
    assert SL.pc_caption("floor_hue", 0.63, 0.8) == "moves floor hue in 63%, keeps the rest in 80%"
    assert SL.pc_caption("scale", 0.1, 0.9).startswith("weak: ") and SL.pc_caption(None, 0, 1).startswith("weak")


# ------------------------------------------------------------------------------------------------------------
# Measured at precompute time, shown by the app
# ------------------------------------------------------------------------------------------------------------


def test_measured_captions_are_stored_with_the_assets_and_shown_by_the_app(
    tmp_path, monkeypatch, quick_factor_classifiers
):
    from helpers import make_tiny_checkpoint

    from app.loaded import make_loaded
    from soda import api, precompute

    monkeypatch.setenv("SODA_CACHE", str(tmp_path / "cache"))
    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    model = api.load_model(str(ckpt))
    assets = precompute.load_or_compute(model, n_examples=4, n_map=64)
    assert assets.named_labels == [s.label for s in E.default_specs()]  # the world's sliders, from soda.sliders
    eff = SL.ensure_measured(
        model, assets, n_scenes=2, pc_scenes=2, strengths=(2.0,), save=precompute.persist_measurement
    )
    assert set(eff["named"]) == set(assets.named_labels)
    for r in eff["named"].values():
        assert r["caption"] and (r["effect"] is None or 0 <= r["effect"] <= 1) and 0 <= r["preservation"] <= 1
        assert r["weak"] == r["caption"].startswith("weak: ")
    # the named sliders were chosen by the metric: per slider the candidate with the best min(effect, preservation)
    assert set(eff["chosen"]) == set(assets.named_labels) and eff["candidates"] == list(SL.CANDIDATES)
    for label, method in eff["chosen"].items():
        table = eff["selection"][label]
        scores = {m: SL._score(r["effect"], r["preservation"]) for m, r in table.items()}
        scores[SL.SHIPPED] = (scores[SL.SHIPPED][0] + SL.CHOICE_MARGIN, scores[SL.SHIPPED][1])
        assert scores[method] == max(scores.values())
    n_pc = int((assets.section_dirs.norm(dim=-1) > 0).sum())
    assert len(eff["sections"]) == n_pc
    # stored in the cache folder: a fresh load carries it; a second call does not measure again
    again = precompute.load_assets(assets.folder, assets.fingerprint)
    assert again.meta["slider_effects"] == json.loads(json.dumps(eff))
    assert torch.equal(again.named_dirs, assets.named_dirs)  # the chosen directions were saved with the assets
    assert SL.ensure_measured(model, again, n_scenes=1) is again.meta["slider_effects"]
    m = make_loaded("k", model, again)
    assert m.infos["label.object_hue +"] == eff["named"]["object_hue +"]["caption"]
    name = "section0.pc1"
    i = m.slots.index(name)
    fac = eff["sections"][name]["factor"]
    assert m.infos[name] == eff["sections"][name]["caption"]
    assert m.slot_labels[i] == "S0 PC1" + (f" · {fac.replace('_', ' ')}" if fac else "")
    # assets without a measurement: no caption, the raw labels
    plain = make_loaded("k", model, precompute.compute_assets(model, n_examples=2, n_map=32))
    assert plain.infos == {} and plain.slot_labels[i] == "S0 PC1"


def test_folder_assets_are_not_measured(tmp_path):
    class Assets:
        factor_names = ["label"]
        meta: dict = {}

    class Model:
        full_config = None

    assert SL.ensure_measured(Model(), Assets()) is None


# ------------------------------------------------------------------------------------------------------------
# Refinement through the decoder
# ------------------------------------------------------------------------------------------------------------


BLUE = 0.7 * 2 * np.pi  # the object hue slider's + end on the colour circle


class PaintModel(torch.nn.Module):
    """A 'decoder' with a known answer: its v-prediction at t = 1 (alpha_bar 0: x0 = -v) paints the image's three
    channels from z: a point on the colour circle (z0, z1) and the scale z2, which also pushes the colour towards
    blue, 1.5x as strongly as z0, z1 do. The one-step decode of z (decode_steps=1) is that paint everywhere."""

    res, uses_cameras, n_sections = 4, False, 1

    def __init__(self):
        super().__init__()
        from types import SimpleNamespace

        self.cfg = SimpleNamespace(diffusion=SimpleNamespace(schedule="inverted_cosine", prediction="v"))

    def sections(self, z):
        return z[:, None]

    def denoise(self, x, t, zs, rays=None):
        z = zs[:, 0]
        push = 1.5 * z[:, 2]
        paint = torch.stack([z[:, 0] + push * np.cos(BLUE), z[:, 1] + push * np.sin(BLUE), z[:, 2]], 1)
        return -paint[:, :, None, None].expand(-1, -1, self.res, self.res)


class PaintReader(torch.nn.Module):
    """Factor logits from the painted channels: the object hue from channels 0 and 1 (a point on the colour circle),
    the scale from channel 2; every other factor uniform."""

    def forward(self, img):
        from soda.clip.factors import class_counts

        m = img.mean((2, 3))
        counts = [int(c) for c in class_counts()]
        ang = torch.arange(10) * 2 * np.pi / 10
        out = [torch.zeros(img.shape[0], c) for c in counts]
        out[2] = 8 * (m[:, :1] * ang.cos() + m[:, 1:2] * ang.sin())
        out[3] = -4 * (torch.arange(4) - 1.5 - 4 * m[:, 2:3]) ** 2
        return torch.cat(out, 1)


def test_refinement_removes_what_a_direction_leaks_into_another_factor():
    """The start direction turns the hue to blue half through the scale coordinate, which turns it faster but also
    changes the scale: the hue objective alone keeps that leak (checked with keep_weight=0), the penalty on every
    other factor's class change removes it."""
    from types import SimpleNamespace

    g = torch.Generator().manual_seed(0)
    n = 200
    ang = torch.rand(n, generator=g) * 2 * np.pi
    Z = torch.stack([0.4 * ang.cos(), 0.4 * ang.sin(), 0.2 * torch.randn(n, generator=g)], 1)
    blue = torch.tensor([np.cos(BLUE), np.sin(BLUE), 0.0]).float()
    d0 = blue + torch.tensor([0.0, 0.0, 1.0])
    model, clf = PaintModel(), SimpleNamespace(net=PaintReader())
    spec = E.spec_for_label("object_hue +")
    u0 = d0 / d0.norm()
    free = SL.refine_direction(model, clf, spec, d0, Z[:8], Z, steps=40, lr=0.05, keep_weight=0.0, decode_steps=1)
    assert float(free[2] / free.norm()) > 0.8 * float(u0[2])  # without the penalty the leak stays
    d = SL.refine_direction(model, clf, spec, d0, Z[:8], Z, steps=40, lr=0.05, decode_steps=1)
    u = d / d.norm()
    assert abs(float(u[2])) < 0.2 * float(u0[2])  # with it, the scale leak is gone
    assert float(u[:2] @ blue[:2]) / float(u[:2].norm()) > 0.9  # and the slider still turns the hue to blue
    X = Z - Z.mean(0)
    assert float((X @ u).std()) == pytest.approx(float(d.norm()), rel=1e-3)  # one std long
    assert all(p.requires_grad for p in model.parameters()) and all(p.requires_grad for p in clf.net.parameters())
    net = torch.nn.Linear(2, 2)
    with SL.frozen(net):  # refine_direction freezes the weights while it runs, and gives the flags back
        assert not any(p.requires_grad for p in net.parameters())
    assert all(p.requires_grad for p in net.parameters())
