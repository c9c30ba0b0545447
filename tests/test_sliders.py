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


# ------------------------------------------------------------------------------------------------------------
# Sliders that are not straight lines (soda.sliders.moves): the hue wheel, the shape swap
# ------------------------------------------------------------------------------------------------------------


def _arc(a, b, n=10):
    return torch.minimum((a - b) % n, (b - a) % n)


def test_hue_rotation_turns_each_hue_one_class_towards_the_named_colour():
    """Known answers on latents whose object hue lies on a circle (synthetic(): dims 0-1): one unit turns every
    scene's hue one class along the shorter arc towards blue (+) or yellow (-), never past it, and leaves every
    other section as it was (rotate_sec); the straight 'mean' direction cannot: a scene whose hue is the - end
    itself (yellow) moves through the centre of the circle, where no hue is read."""
    Z, f = synthetic()
    imp = SL.section_importance(Z, f, 4, n_max=400)
    spec = E.spec_for_label("object_hue +")  # + blue (7), - yellow (2)
    (rot,), kept = SL.fit_rotations(Z, f, [spec], "rotate_sec", imp, 3)
    assert kept == [spec] and isinstance(rot, SL.HueRotation)
    hue = f[:, 2]
    u0 = rot.position(Z)
    err = _arc(u0, hue.double())
    assert float(err.median()) < 0.1 and float(err.max()) < 0.5  # it reads where each hue lies (noise 0.05)
    for amount, end in ((1.0, 7), (-1.0, 2), (2.0, 7), (-2.0, 2)):
        z1 = rot.move(Z, amount)
        u1 = rot.position(z1)
        before, after = _arc(u0, torch.tensor(float(end))), _arc(u1, torch.tensor(float(end)))
        want = torch.clamp(before - abs(amount), min=0)  # |amount| classes closer, stopping at the named colour
        miss = (after - want).abs()
        assert float(miss.median()) < 0.1 and float(miss.max()) < 0.5
        assert torch.equal(z1[:, 3:], Z[:, 3:])  # only the hue's section (dims 0-2) moves
    far = rot.move(Z, 50.0)  # never past the named colour
    assert float(_arc(rot.position(far), torch.tensor(7.0)).max()) < 0.5
    assert torch.equal(rot.move(Z, 0.0), Z)
    per_row = rot.move(Z[:3], torch.tensor([1.0, 0.0, -1.0]))  # one amount per row, as api.traverse asks
    assert torch.equal(per_row[1], Z[1]) and torch.allclose(per_row[0], rot.move(Z[:1], 1.0)[0])
    from soda import api

    assert torch.equal(api.move_along(Z, rot, 1.0), rot.move(Z, 1.0))  # every consumer moves it through the api
    # the straight line from a yellow scene: +1 std lands near the centre of the circle, far from any hue
    D, _ = SL.fit_directions(Z, f, [spec], "mean", imp, 3)
    yellow = Z[hue == 2][:20]
    radius = lambda z: z[:, :2].norm(dim=1)  # noqa: E731
    assert float(radius(api.move_along(yellow, D[0], 1.0)).mean()) < 0.6 * float(radius(yellow).mean())
    assert float(radius(rot.move(yellow, 1.0)).mean()) > 0.9 * float(radius(yellow).mean())


def test_hue_rotation_leaves_out_sliders_that_are_not_hues_and_checks_its_parts():
    Z, f = synthetic()
    rots, kept = SL.fit_rotations(Z, f, E.default_specs(), "rotate")
    assert [s.label for s in kept] == ["floor_hue +", "wall_hue +", "object_hue +"]
    with pytest.raises(ValueError, match="not a hue slider"):
        SL.fit_rotation(Z, f[:, 3], E.spec_for_label("scale +"))
    with pytest.raises(ValueError, match="section importance"):
        SL.fit_rotations(Z, f, E.default_specs(), "rotate_sec")
    parts = rots[2].tensors()
    again = SL.HueRotation.from_parts(parts, rots[2].meta())
    assert torch.equal(again.move(Z, 1.5), rots[2].move(Z, 1.5))
    with pytest.raises(ValueError, match="shapes"):
        SL.HueRotation.from_parts({**parts, "read": parts["read"][:5]}, rots[2].meta())
    with pytest.raises(ValueError, match="out of range"):
        SL.HueRotation.from_parts(parts, {**rots[2].meta(), "plus": 12})


def test_class_swap_moves_each_scene_from_its_own_shape_to_the_named_one():
    """synthetic(): the shape is one coordinate per class in dims 9-11 (class 3: none). +1 moves every scene by the
    difference of its own class's mean and the named class's, so z then reads as the named shape; a fraction
    blends; -1 takes a scene of the named shape to the shape it resembles most and leaves the others alone."""
    Z, f = synthetic()
    spec = E.spec_for_label("shape: sphere")  # class 2
    swaps, kept = SL.fit_swaps(Z, f, E.default_specs())
    assert [s.label for s in kept] == [f"shape: {n}" for n in world.SHAPE_NAMES]
    sw = swaps[kept.index(spec)]
    shape = f[:, 4]
    assert float((sw.probabilities(Z).argmax(1) == shape).float().mean()) > 0.99  # it reads the shape
    M = sw.means.double()
    for amount in (1.0, 3.0):  # all the way at 1; more changes nothing
        z1 = sw.move(Z, amount)
        assert torch.allclose(z1.double(), Z.double() + M[2] - M[shape], atol=1e-5)
        assert bool((sw.probabilities(z1).argmax(1) == 2).all())
    half = sw.move(Z, 0.5)
    assert torch.allclose(half.double(), Z.double() + 0.5 * (M[2] - M[shape]), atol=1e-5)
    away = sw.move(Z, -1.0)
    spheres = shape == 2
    assert torch.equal(away[~spheres], Z[~spheres])  # not a sphere: nothing to leave
    assert not bool((sw.probabilities(away[spheres]).argmax(1) == 2).any())
    assert torch.equal(sw.move(Z, 0.0), Z)
    again = SL.load_move(sw.tensors(), sw.meta())
    assert isinstance(again, SL.ClassSwap) and torch.equal(again.move(Z, 0.7), sw.move(Z, 0.7))
    no_capsules = shape != 3  # a class missing from the data has no mean to move to: no shape swap at all
    assert SL.fit_swaps(Z[no_capsules], f[no_capsules], E.default_specs()) == ([], [])
    with pytest.raises(ValueError, match="unknown slider kind"):
        SL.load_move(sw.tensors(), {**sw.meta(), "kind": "teleport"})
    with pytest.raises(ValueError, match="out of range"):
        SL.load_move(sw.tensors(), {**sw.meta(), "plus": 4})


def test_class_step_moves_along_the_chain_of_class_means():
    """synthetic(): the scale is linear in dim 6 (grid value / 4; 8 values in 4 classes). One unit moves where the
    scene lies (the expected class read from z) one class towards the named end, never past it."""
    from soda.clip.factors import bin_factors

    Z, f = synthetic()
    steps, kept = SL.fit_steps(Z, f, E.default_specs())
    assert [s.label for s in kept] == ["scale +", "orientation +"]
    st = steps[0]
    cls = bin_factors(f)[:, 3].double()
    u0 = st.position(Z)
    assert float((u0 - cls).abs().median()) < 0.2
    for amount, end in ((1.0, 3), (-1.0, 0), (2.0, 3), (10.0, 3), (-10.0, 0)):
        u1 = st.position(st.move(Z, amount))
        want = u0 + torch.sign(end - u0) * torch.minimum(torch.full_like(u0, abs(amount)), (end - u0).abs())
        assert float((u1 - want).abs().median()) < 0.2, amount
    assert float((st.move(Z, 1.0)[:, 6] - Z[:, 6]).max()) < 0.7  # about one class: two grid values / 4 = 0.5
    assert torch.equal(st.move(Z, 0.0), Z)
    again = SL.load_move(st.tensors(), st.meta())
    assert isinstance(again, SL.ClassStep) and torch.equal(again.move(Z, -0.6), st.move(Z, -0.6))
    with pytest.raises(ValueError, match="shapes"):
        SL.load_move({**st.tensors(), "bias": st.bias[:2]}, st.meta())


def test_hue_rotations_travel_with_the_assets_and_move_the_app_slider(tmp_path, monkeypatch):
    from helpers import make_tiny_checkpoint

    from app.explorer_render import Renderer
    from app.loaded import make_loaded
    from soda import api, precompute

    monkeypatch.setenv("SODA_CACHE", str(tmp_path / "cache"))
    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    model = api.load_model(str(ckpt))
    assets = precompute.compute_assets(model, n_examples=2, n_map=64)
    rots, specs = SL.fit_rotations(assets.map_latents, assets.map_factors, E.default_specs(), "rotate")
    swaps, _ = SL.fit_swaps(assets.map_latents, assets.map_factors, E.default_specs())
    assert len(swaps) == 4  # 64 scenes hold every shape
    sliders = [rots[0], assets.named_dirs[1], rots[2], assets.named_dirs[3], swaps[0], swaps[1], *assets.named_dirs[6:]]
    assets.set_named(sliders, assets.named_labels)  # two swaps of one factor share their means and reader
    assert set(assets.named_moves) == {"floor_hue +", "object_hue +", "shape: cube", "shape: cylinder"}
    assert torch.equal(assets.named_dirs[0], rots[0].vector)  # plain readers still get a direction
    fp = precompute.weights_fingerprint(ckpt)
    folder = precompute.save_assets(assets, tmp_path / "assets", fp)
    again = precompute.load_assets(folder, fp)
    z = assets.map_latents[:5]
    assert torch.equal(again.named_sliders()[2].move(z, 1.0), rots[2].move(z, 1.0))
    assert torch.equal(again.named_sliders()[1], assets.named_dirs[1])
    assert torch.equal(again.named_sliders()[4].move(z, 1.0), swaps[0].move(z, 1.0))
    assert torch.equal(again.named_sliders()[5].move(z, 1.0), swaps[1].move(z, 1.0))
    m = make_loaded("k", model, again)
    assert isinstance(m.directions["label.object_hue +"], SL.HueRotation)
    got = Renderer.latent(m, z[0].tolist(), {"label.object_hue +": 1.0})
    assert torch.allclose(got, rots[2].move(z[:1], 1.0), atol=1e-6)
    # a damaged rotation makes the whole cache unreadable (rebuilt), never a slider that fails later
    from safetensors.torch import load_file, save_file

    t = load_file(str(folder / precompute.ASSETS_NAME))
    t["move0.read"] = t["move0.read"][:3].contiguous()
    save_file(t, str(folder / precompute.ASSETS_NAME))
    assert precompute.load_assets(folder, fp) is None


def test_captions():
    spec = E.spec_for_label("object_hue +")
    assert SL.caption(0.91, 0.88, spec) == "object hue to blue (- yellow): moves it in 91%, keeps the rest in 88%"
    assert SL.caption(0.3, 0.95, spec).startswith("weak: ")
    wheel = SL.caption(1.0, 0.81, spec, unit=SL.HueRotation.unit)
    assert wheel == "object hue to blue (- yellow), one hue step per unit: moves it in 100%, keeps the rest in 81%"
    assert SL.caption(None, 0.95, E.spec_for_label("shape: sphere")).startswith("weak: shape: sphere: moves it in n/a")
    assert SL.free_caption("floor_hue", 0.63, 0.8) == "moves floor hue in 63%, keeps the rest in 80%"
    assert SL.free_caption("scale", 0.1, 0.9).startswith("weak: ") and SL.free_caption(None, 0, 1).startswith("weak")


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
        model, assets, n_scenes=2, free_scenes=2, mix_pairs=3, strengths=(2.0,), save=precompute.persist_measurement
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
    assert len(eff["free"]) == assets.free_dirs.shape[0]  # every label-free slider measured
    assert set(eff["free_best"]) == set(E.FACTORS)
    # the Mix panel's carriers: every set of up to 3 sections decoded on 3 pairs, each factor given a set (or none
    # where no pair differs on it)
    mix, K = eff["mixing"], model.n_sections
    assert mix["n_pairs"] == 3 and mix["groups"] == len(E.section_groups(K, 3))
    assert set(mix["carriers"]) == set(E.FACTORS)
    for f, c in mix["carriers"].items():
        assert (c == []) == (mix["follow"][f] is None) and all(0 <= k < K for k in c) and len(c) <= 3
    # stored in the cache folder: a fresh load carries it; a second call does not measure again
    again = precompute.load_assets(assets.folder, assets.fingerprint)
    assert again.meta["slider_effects"] == json.loads(json.dumps(eff))
    assert torch.equal(again.named_dirs, assets.named_dirs)  # the chosen directions were saved with the assets
    assert SL.ensure_measured(model, again, n_scenes=1) is again.meta["slider_effects"]
    m = make_loaded("k", model, again)
    assert m.infos["label.object_hue +"] == eff["named"]["object_hue +"]["caption"]
    name = "free1"
    i = m.slots.index(name)
    fac = eff["free"][name]["factor"]
    assert m.infos[name] == eff["free"][name]["caption"]
    assert m.slot_labels[i] == "D1" + (f" · {fac.replace('_', ' ')}" if fac else "")
    # assets without a measurement: no caption, the raw labels
    plain = make_loaded("k", model, precompute.compute_assets(model, n_examples=2, n_map=32))
    assert plain.infos == {} and plain.slot_labels[i] == "D1"


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


def test_projected_rotation_drops_what_its_write_map_leaks_into_another_factor():
    """Latents whose scale coordinate follows the hue (z2 = 0.3 cos of the hue angle): the least-squares write map
    of a rotation fitted on them moves z2 too, which the PaintModel draws as a scale change; 'rotate_proj' removes
    the component along the decoder-measured scale gradient and still turns the hue."""
    from types import SimpleNamespace

    g = torch.Generator().manual_seed(0)
    n = 400
    f = world.sample_factors(n, g, split="test")
    ang = f[:, 2].float() * 2 * np.pi / 10
    Z = torch.stack([0.4 * ang.cos(), 0.4 * ang.sin(), 0.3 * ang.cos() + 0.02 * torch.randn(n, generator=g)], 1)
    model, clf = PaintModel(), SimpleNamespace(net=PaintReader())
    spec = E.spec_for_label("object_hue +")
    (plain,), _ = SL.fit_rotations(Z, f, [spec], "rotate")
    (proj,), _ = SL.fit_rotations(Z, f, [spec], "rotate_proj", model=model, classifiers=clf)
    assert float(plain.write[:, 2].abs().max()) > 0.25  # the leak: the scale coordinate moves with the hue
    assert float(proj.write[:, 2].abs().max()) < 0.05 * float(proj.write.abs().max())  # gone
    u0, u1 = plain.position(Z), plain.position(proj.move(Z, 1.0))  # read with the unprojected map: the true hue
    assert float((_arc(u1, torch.tensor(7.0)) - (_arc(u0, torch.tensor(7.0)) - 1).clamp(min=0)).abs().median()) < 0.3
    G = SL.score_gradients(model, clf, Z[:16], 4, 0)  # given once (choose_directions shares them): the same answer
    (again,), _ = SL.fit_rotations(Z, f, [spec], "rotate_proj", model=model, classifiers=clf, gradients=G)
    assert torch.allclose(again.write, proj.write)
    with pytest.raises(ValueError, match="model and the factor classifiers"):
        SL.fit_rotations(Z, f, [spec], "rotate_proj")


def test_project_out_ignores_zero_and_dependent_rows():
    d = torch.tensor([1.0, 2.0, 2.0])
    assert torch.allclose(SL.project_out(d, torch.zeros(2, 3)), d)  # a factor the decoder never draws: no span
    G = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 2.0], [0.0, 0.0, 0.0]])  # one direction, said twice, and a zero
    out = SL.project_out(d, G)
    assert abs(float(out[2])) < 1e-6 and float(out.norm()) == pytest.approx(3.0)  # kept at d's length
    assert float(out[1] / out[0]) == pytest.approx(2.0)
