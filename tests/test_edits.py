"""Edit fidelity (soda.eval.edits): the scores on hand-made classes with known answers, and the oracle that proves the
metric can succeed and fail: a model whose z is the factors and whose decoder is the renderer scores 1, the same
model with permuted directions scores 0 effect and low preservation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soda.clip.factors import bin_factors
from soda.data import world
from soda.eval import edits as E


def row(floor=0, wall=0, obj=0, scale=0, shape=0, orient=0):
    return [floor, wall, obj, scale, shape, orient]


def spec(label):
    return E.spec_for_label(label)


# ------------------------------------------------------------------------------------------------------------
# Pure scores
# ------------------------------------------------------------------------------------------------------------


def test_hue_effect_is_the_signed_step_on_the_colour_circle():
    s = spec("object_hue +")  # + towards 7 (blue), - towards 2
    assert (s.plus, s.minus) == (7, 2)
    before = torch.tensor([row(obj=9), row(obj=9), row(obj=4), row(obj=7), row(obj=0)])
    after_plus = torch.tensor([row(obj=8), row(obj=0), row(obj=5), row(obj=7), row(obj=9)])
    after_minus = torch.tensor([row(obj=0), row(obj=9), row(obj=3), row(obj=6), row(obj=1)])
    el, ok, kept = E.slider_outcomes(before, torch.stack([after_plus, after_minus]), s, [1.0, -1.0])
    # +: 9->8 closer to 7, 9->0 farther (circular), 4->5 closer, already at 7 (not eligible), 0->9 closer (wraps)
    assert el[0].tolist() == [True, True, True, False, True]
    assert ok[0].tolist() == [True, False, True, False, True]
    # -: towards 2: 9->0 closer (wraps), 9 stays (not closer), 4->3 closer, 7->6 closer, 0->1 closer
    assert ok[1].tolist() == [True, False, True, True, True]
    assert kept.all()


def test_categorical_slider_reaches_or_leaves_the_named_shape():
    s = spec("shape: sphere")
    sphere = world.SHAPE_NAMES.index("sphere")
    before = torch.tensor([row(shape=0), row(shape=sphere), row(shape=1)])
    after = torch.tensor(
        [
            [row(shape=sphere), row(shape=sphere), row(shape=1)],  # +: cube -> sphere, (sphere: n/a), cyl stays
            [row(shape=0), row(shape=0), row(shape=1)],  # -: only the sphere can leave: it did
        ]
    )
    el, ok, kept = E.slider_outcomes(before, after, s, [2.0, -2.0])
    assert el.tolist() == [[True, False, True], [False, True, False]]
    assert ok.tolist() == [[True, False, False], [False, True, False]]
    sc = E.slider_scores(before, after[None], [s], [2.0, -2.0])
    assert sc.effect[0] == pytest.approx(2 / 3) and sc.preservation[0] == 1.0


def test_preservation_counts_every_other_factor_and_orientation_only_on_visible_shapes():
    s = spec("scale +")
    cube, sphere = 0, world.SHAPE_NAMES.index("sphere")
    before = torch.tensor([row(shape=cube, orient=1), row(shape=sphere, orient=1), row(floor=3), row()])
    after = torch.tensor(
        [
            [
                row(shape=cube, orient=2, scale=1),  # orientation moved on a cube: not kept
                row(shape=sphere, orient=4, scale=1),  # orientation of a sphere is not read: kept
                row(floor=4, scale=1),  # the floor moved: not kept
                row(scale=1),  # kept
            ]
        ]
    )
    el, ok, kept = E.slider_outcomes(before, after, s, [1.0])
    assert kept.tolist() == [[False, True, False, True]]
    assert ok.all()
    sc = E.slider_scores(before, after[None], [s], [1.0])
    assert sc.preservation[0] == 0.5 and sc.effect[0] == 1.0
    ch = dict(zip(E.FACTORS, sc.changes[0], strict=True))
    assert ch["scale"] == 1.0 and ch["floor_hue"] == 0.25
    assert ch["orientation"] == pytest.approx(1 / 3)  # three cubes are comparable, the sphere is not
    assert ch["wall_hue"] == 0.0


def test_orientation_effect_needs_a_visible_shape_before_and_after():
    s = spec("orientation +")
    before = torch.tensor([row(shape=0, orient=1), row(shape=2, orient=1), row(shape=3, orient=1)])
    after = torch.tensor([[row(shape=0, orient=3), row(shape=2, orient=3), row(shape=2, orient=3)]])
    el, ok, kept = E.slider_outcomes(before, after, s, [1.0])
    assert el.tolist() == [[True, False, True]] and ok.tolist() == [[True, False, False]]
    assert kept.tolist() == [[True, True, False]]  # the capsule became a sphere


def test_mixing_follow_and_stay_with_carriers():
    # the floor is carried by section 0, the object hue by section 1, the rest by section 2; 4 pairs differ in both
    pa = torch.tensor([row(floor=0, obj=0)] * 4)
    pb = torch.tensor([row(floor=5, obj=5)] * 4)
    single = torch.stack(
        [
            torch.tensor([row(floor=5, obj=0)] * 3 + [row(floor=0, obj=0)]),  # section 0 from B: floor follows 3/4
            torch.tensor([row(floor=0, obj=5)] * 2 + [row(floor=5, obj=5)] * 2),  # section 1: obj follows, floor 2/4
            pa,  # section 2: nothing moves
        ]
    )
    carriers = [[0], [2], [1], [2], [2], [2]]
    group = torch.stack([single[c[0]] for c in carriers])  # one carrying section per factor here
    m = E.mixing_scores(pa, pb, single, group, carriers)
    assert m.follow[0, 0] == 0.75 and m.stay[0, 0] == 0.25 and m.follow[1, 2] == 1.0
    assert np.isnan(m.follow[0, 1])  # wall never differs
    assert m.effect[0] == 0.75 and m.effect[2] == 1.0
    assert m.preservation[2] == 0.5  # swapping section 1 also moved the floor in 2 of 4
    assert m.preservation[0] == 1.0  # swapping section 0 kept the object hue
    # a factor spread over two sections follows only when both are swapped
    both = E.mixing_scores(pa, pb, single, torch.stack([pb] + [single[0]] * 5), [[0, 1]] + carriers[1:])
    assert both.effect[0] == 1.0 and both.preservation[0] == 1.0  # the object hue shares section 1: not counted
    assert E.carriers_from_importance(np.array([[0.6, 0.1], [0.35, 0.8], [0.05, 0.1]])) == [[0, 1], [1]]


def test_mix_carriers_are_chosen_by_what_the_decoded_mixes_do():
    """Known answer: the floor follows B only when sections 0 and 1 come together (either alone leaves A's floor);
    section 2 carries the object hue. Each factor's group is the one that moves it and keeps the rest; a factor that
    never differs between A and B has none."""
    groups = E.section_groups(3, 3)
    assert groups == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    pa = torch.tensor([row(floor=0, obj=0)] * 4)
    pb = torch.tensor([row(floor=5, obj=5)] * 4)

    def mix(g):
        floor = 5 if {0, 1} <= set(g) else 0
        return torch.tensor([row(floor=floor, obj=5 if 2 in g else 0)] * 4)

    out = E.choose_carriers(pa, pb, torch.stack([mix(g) for g in groups]), groups)
    assert out["carriers"]["floor_hue"] == [0, 1] and out["follow"]["floor_hue"] == 1.0
    assert out["keep"]["floor_hue"] == 1.0  # (0, 1, 2) also moves the floor, but the object hue with it
    assert out["carriers"]["object_hue"] == [2] and out["follow"]["object_hue"] == 1.0
    assert out["carriers"]["wall_hue"] == [] and out["follow"]["wall_hue"] is None  # never differs
    # what the importance-style single carrier would do here: one of the two floor sections, the floor never follows
    single = E.mixing_scores(pa, pb, torch.stack([mix(g) for g in groups[:3]]), torch.stack([mix((1,))] * 6), [[1]] * 6)
    assert single.effect[0] == 0.0


def test_view_identity_counts_frames_that_agree_on_every_factor():
    ref = torch.tensor([row(obj=3, shape=0, orient=2), row(obj=1, shape=2, orient=0)])
    frames = torch.tensor(
        [
            [row(obj=3, shape=0, orient=2), row(obj=4, shape=0, orient=2)],
            [row(obj=1, shape=2, orient=4), row(obj=1, shape=2, orient=0)],  # sphere: orientation not read
        ]
    )
    v = E.view_identity(ref, frames)
    assert v["all"] == 0.75 and v["per_frame"] == [1.0, 0.5]
    assert v["per_factor"]["object_hue"] == 0.75 and v["per_factor"]["orientation"] == 1.0


def test_accuracy_bins_the_truth():
    factors = torch.tensor([row(scale=7, orient=14), row(scale=0, shape=2, orient=0)])
    pred = bin_factors(factors)
    pred[1, 5] = 3  # wrong, but the sphere's orientation is not counted
    acc = E.accuracy(pred, factors)
    assert acc["scale"] == 1.0 and acc["orientation"] == 1.0


# ------------------------------------------------------------------------------------------------------------
# The oracle: the renderer as a perfect decoder of a factor-valued z
# ------------------------------------------------------------------------------------------------------------


class ExactReader:
    """A perfect factor classifier for the oracle's images: the decoder records which factors it rendered into each
    image, and reading an image looks them up (images of a symmetric shape that differ only in orientation are the
    same image; their orientation is never compared)."""

    def __init__(self, oracle: E.FactorOracle):
        self.oracle, self.seen = oracle, {}

    def decode(self, z):
        f = self.oracle.factors(z)
        img = self.oracle.renderer(f) * 2 - 1
        for fi, im in zip(f, img, strict=True):
            self.seen[im.numpy().tobytes()] = fi
        return img

    def classify(self, images):
        return bin_factors(torch.stack([self.seen[im.numpy().tobytes()] for im in images]))


@pytest.fixture(scope="module")
def oracle_setup():
    from soda.data.views import world_eval_set

    oracle = E.FactorOracle(16)
    data = world_eval_set(24, 16, split="test", seed=3)
    return oracle, ExactReader(oracle), oracle.encode(data["factors"]), data["factors"]


def test_the_oracle_encodes_and_decodes_the_factors(oracle_setup):
    oracle, _, z, factors = oracle_setup
    assert torch.equal(oracle.factors(z), factors)


def test_the_oracle_scores_one(oracle_setup):
    oracle, reader, z, factors = oracle_setup
    specs = E.default_specs()
    sc, ex = E.measure_sliders(reader.decode, reader.classify, z, oracle.directions(specs), specs)
    assert np.all(sc.effect == 1.0) and np.all(sc.preservation == 1.0)
    assert (sc.n_eligible > 0).all()
    for k, s in enumerate(specs):  # the change matrix: each slider changes its own factor and nothing else
        others = [g for g in range(len(E.FACTORS)) if g != s.index]
        assert sc.changes[k, s.index] > 0.3 and np.nansum(sc.changes[k, others]) == 0
    assert E.accuracy(ex["before"], factors) == dict.fromkeys(E.FACTORS, 1.0)


def test_the_oracle_with_permuted_directions_scores_low(oracle_setup):
    oracle, reader, z, _ = oracle_setup
    specs = E.default_specs()
    dirs = oracle.directions(specs)
    perm = torch.roll(torch.arange(len(specs)), 4)  # every slider gets another factor's direction
    assert all(specs[int(p)].factor != s.factor for p, s in zip(perm, specs, strict=True))
    sc, _ = E.measure_sliders(reader.decode, reader.classify, z, dirs[perm], specs)
    assert np.all(sc.effect == 0.0)
    assert sc.preservation.mean() < 0.6
    # and the matrix says what the sliders really move
    for k, p in enumerate(perm.tolist()):
        assert np.nanargmax(sc.changes[k]) == specs[p].index


def test_the_oracle_with_hue_rotations_scores_one(oracle_setup):
    """Hue sliders that turn the wheel (soda.sliders.HueRotation), fitted on the oracle's latents and measured
    beside straight directions in one call: they move their hue the promised way in every edit and nothing else."""
    from soda import sliders as SL

    oracle, reader, z, factors = oracle_setup
    specs = E.default_specs()
    hue_specs = specs[:3]
    assert [s.factor for s in hue_specs] == list(E.CIRCULAR)
    classes = bin_factors(factors)
    rots = []
    for s in hue_specs:  # written on the oracle's own hue dims (24 scenes correlate with the rest by chance)
        dims = torch.zeros(oracle.z_dim, dtype=torch.bool)
        dims[oracle.dims[s.factor]] = True
        rots.append(SL.fit_rotation(z, classes[:, s.index], s, dims))
    dirs = oracle.directions(specs)
    mixed = [*rots, *dirs[3:]]  # rotations for the hues, the oracle's own directions for the rest
    sc, _ = E.measure_sliders(reader.decode, reader.classify, z, mixed, specs)
    assert np.all(sc.effect == 1.0) and np.all(sc.preservation == 1.0)
    # the shapes by ClassSwap, fitted on 2,000 other scenes' latents (class means of a few dozen would move the
    # other factors by chance): every edit reaches or leaves the named shape, nothing else changes
    fit = world.sample_factors(2000, torch.Generator().manual_seed(9), split="test")
    swaps, shape_specs = SL.fit_swaps(oracle.encode(fit), fit, specs)
    assert [s.factor for s in shape_specs] == ["shape"] * 4
    sc, _ = E.measure_sliders(reader.decode, reader.classify, z, swaps, shape_specs)
    assert np.all(sc.effect == 1.0) and np.all(sc.preservation == 1.0)
    # scale and orientation by ClassStep, fitted the same way: one class per unit towards the named end
    steps, step_specs = SL.fit_steps(oracle.encode(fit), fit, specs)
    assert [s.factor for s in step_specs] == ["scale", "orientation"]
    sc, _ = E.measure_sliders(reader.decode, reader.classify, z, steps, step_specs)
    assert np.all(sc.effect == 1.0) and np.all(sc.preservation == 1.0)
    # the same rotations sent to the wrong hue sliders never move the promised factor
    sc, _ = E.measure_sliders(reader.decode, reader.classify, z, [rots[1], rots[2], rots[0]], hue_specs)
    assert np.all(sc.effect == 0.0)


def test_the_oracle_mixes_sections_exactly(oracle_setup):
    oracle, reader, z, _ = oracle_setup
    z_a, z_b = z[:12], z[12:]
    carriers = [[k] for k in range(6)]  # the oracle's section k is factor k
    m, _ = E.measure_mixing(reader.decode, reader.classify, z_a, z_b, oracle.section_slices, carriers)
    assert np.nanmin(m.effect) == 1.0 and np.all(m.preservation == 1.0)
    off = m.follow[~np.eye(6, dtype=bool)]
    assert np.nansum(off) == 0  # swapping section k never moves another factor
    wrong, _ = E.measure_mixing(reader.decode, reader.classify, z_a, z_b, oracle.section_slices, carriers[::-1])
    assert np.nanmax(wrong.effect) < 0.5


def test_the_oracle_mix_carriers_are_its_sections(oracle_setup):
    oracle, reader, z, _ = oracle_setup
    out = E.measure_carriers(reader.decode, reader.classify, z[:12], z[12:], oracle.section_slices)
    assert out["groups"] == 6 + 15 + 20 and out["n_pairs"] == 12
    assert out["carriers"] == {f: [k] for k, f in enumerate(E.FACTORS)}  # the oracle's section k is factor k
    assert all(v == 1.0 for v in out["follow"].values()) and all(v == 1.0 for v in out["keep"].values())


# ------------------------------------------------------------------------------------------------------------
# The step of python -m soda.eval (mechanics on a tiny random model)
# ------------------------------------------------------------------------------------------------------------


def test_run_edits_gives_the_report_section_and_figures(tmp_path, quick_factor_classifiers):
    from conftest import tiny_model_with_visible_z

    model = tiny_model_with_visible_z()
    imp = np.eye(model.n_sections, 6)
    sizes = {"n_scenes": 2, "strengths": (-2.0, 2.0), "view_scenes": 2, "view_frames": 2}
    from soda.eval.shipped import shipped_sliders

    m, figs = E.run_edits(model, section_importance=imp, sliders=shipped_sliders(model), **sizes)
    assert set(m["sliders"]["sliders"]) == {s.label for s in E.default_specs()}
    for r in m["sliders"]["sliders"].values():
        assert r["effect"] is None or 0 <= r["effect"] <= 1
        assert 0 <= r["preservation"] <= 1 and len(r["effect_by_strength"]) == 2
    assert m["mixing"]["carriers"]["floor_hue"] == [0] and m["mixing"]["n_pairs"] == 2
    assert set(m["views"]) >= {"decoded", "renderer"} and len(m["views"]["cameras"]) == 2
    assert all(0 <= v <= 1 for v in m["oracle"]["preservation"].values())  # briefly trained classifiers here
    files = E.edit_figures(figs, tmp_path)
    assert all((tmp_path / f).stat().st_size > 0 for f in files.values())
    text = "\n".join(E.edits_section(m, files))
    assert "## Edits" in text and "| object_hue + |" in text and "![edits_matrix](edits_matrix.png)" in text
    assert "| floor_hue | 0 |" in text  # the carrying sections, listed
