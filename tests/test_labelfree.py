"""Label-free sliders (soda.sliders.labelfree) and the evaluation's label-free step: known answers, and proof that the
choice of directions never reads a label."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soda.eval import dci, group_rows, section_codes
from soda.eval.edits import FACTORS
from soda.sliders import labelfree as LF


def test_ica_over_z_recovers_independent_sources_mixed_linearly():
    """Three independent non-Gaussian sources mixed into 6 dims: ICA's directions are the mixing columns (up to order
    and scale), PCA's are not."""
    g = torch.Generator().manual_seed(0)
    S = torch.rand(4000, 3, generator=g, dtype=torch.float64) * 2 - 1  # uniform sources
    A = torch.tensor([[1.0, 0.5, 0, 0, 0.2, 0], [0, 1.0, 0, 0.7, 0, 0], [0.3, 0, 1.0, 0, 0, 0.4]], dtype=torch.float64)
    Z = (S @ A).float()
    D = LF.fit_label_free(Z, [slice(0, 3), slice(3, 6)], "ica_z", n=3)
    cos = (torch.nn.functional.normalize(D.double(), dim=1) @ torch.nn.functional.normalize(A, dim=1).T).abs()
    assert (cos.max(1).values > 0.999).all(), cos  # every direction is one source's mixing column
    assert sorted(cos.argmax(1).tolist()) == [0, 1, 2]
    # one std of the data along each (the slider unit of every method)
    std = ((Z - Z.mean(0)) @ torch.nn.functional.normalize(D, dim=1).T).std(0)
    assert torch.allclose(D.norm(dim=1), std, rtol=1e-3)
    P = LF.fit_label_free(Z, [slice(0, 3), slice(3, 6)], "pca_section", per_section=1)
    assert P.shape == (2, 6) and (P[0, 3:] == 0).all() and (P[1, :3] == 0).all()  # within its section


def test_the_decoder_response_finds_the_direction_the_decoder_reads():
    """A stub decoder that draws only z[2] (as brightness of the whole image), latents with exactly uncorrelated
    dims: the direction that changes the image most per std of the data is e_2, whatever each dim's spread."""
    X = torch.randn(500, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    X = X - X.mean(0)
    evals, evecs = torch.linalg.eigh(X.T @ X / 499)
    X = X @ evecs @ torch.diag(evals.rsqrt()) @ evecs.T  # sample covariance exactly the identity
    Z = (X * torch.tensor([5.0, 3.0, 1.0, 2.0, 4.0], dtype=torch.float64)).float()

    def decode(z):
        return z[:, 2].reshape(-1, 1, 1, 1).expand(-1, 3, 4, 4)

    D = LF.fit_label_free(Z, [slice(0, 5)], "sefa", n=1, decode=decode, jac_scenes=4)
    unit = D[0] / D[0].norm()
    assert abs(float(unit[2])) > 0.999


def test_change_maps_light_up_exactly_where_a_direction_acts():
    """A stub decoder where z[0] paints the top-left 4x4 block and z[1] nothing: the first map is non-zero exactly
    there, the second is zero everywhere."""

    def decode(z):
        img = torch.zeros(z.shape[0], 3, 8, 8)
        img[:, :, :4, :4] = z[:, :1, None, None].tanh()
        return img

    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(0)) * 0.3
    maps = LF.change_maps(decode, z, torch.eye(2), amount=1.0)
    assert maps.shape == (2, 8, 8)
    assert (maps[0, :4, :4] > 0.5).all() and (maps[0, 4:] == 0).all() and (maps[0, :, 4:] == 0).all()
    assert (maps[1] == 0).all()


def test_outcomes_and_the_best_slider_per_factor_have_known_answers():
    """before (N, F) and after (M, S, N, F) classes built by hand: slider 0 changes floor hue in every edit and nothing
    else; slider 1 changes wall hue in half the edits and scale always."""
    F = len(FACTORS)
    before = torch.zeros(4, F, dtype=torch.long)
    before[:, FACTORS.index("shape")] = 0  # a cube: orientation is comparable
    after = before[None, None].repeat(2, 2, 1, 1)
    after[0, :, :, 0] = 3
    after[1, :, :2, 1] = 5
    after[1, :, :, 3] = 2
    o = LF.direction_outcomes(before, after)
    assert o["changes"][0].tolist() == [1.0, 0, 0, 0, 0, 0] and o["keeps"][0, 0] == 1.0 and o["keeps"][0, 1] == 0.0
    assert o["changes"][1].tolist() == [0, 0.5, 0, 1.0, 0, 0]
    assert o["keeps"][1, 3] == 0.5 and o["keeps"][1, 1] == 0.0  # scale's edits keep the rest only where wall stays
    best = LF.best_per_factor(o["changes"], o["keeps"], ["a", "b"])
    assert best["floor_hue"] == {"index": 0, "name": "a", "effect": 1.0, "keeps": 1.0, "met": True}
    assert best["scale"]["name"] == "b" and not best["scale"]["met"]


def test_section_dci_with_k_components_has_known_answers():
    """Section k holds factor k in two noisy dims: PC1-per-section and the 2-PC group protocol both score about 1;
    the rows are summed per section."""
    rng = np.random.default_rng(0)
    fac = rng.integers(0, 5, size=(1200, 3))
    codes = np.concatenate([np.stack([f, -f], 1) + 0.01 * rng.standard_normal((1200, 2)) for f in fac.T], 1)
    assert section_codes(codes, 3, 2).shape == (1200, 6)
    r1 = dci(section_codes(codes[:800], 3), fac[:800], section_codes(codes[800:], 3), fac[800:])
    assert r1["disentanglement"] > 0.95
    r2 = dci(section_codes(codes[:800], 3, 2), fac[:800], section_codes(codes[800:], 3, 2), fac[800:])
    from soda.eval import dci_scores

    assert dci_scores(group_rows(r2["importance_matrix"], 2))["disentanglement"] > 0.95
    assert group_rows(np.arange(12.0).reshape(4, 3), 2).tolist() == [[3.0, 5.0, 7.0], [15.0, 17.0, 19.0]]
    with pytest.raises(ValueError, match="fewer than k"):
        section_codes(codes, 3, 3)


@pytest.mark.slow
def test_the_label_free_choice_is_blind_to_labels(tmp_path, monkeypatch):
    """The evaluation's label-free step on a tiny model: scrambling the factors changes the scores it reports (labels
    score) but not one of the directions it scores (labels never choose)."""
    from helpers import make_tiny_checkpoint

    from soda import api
    from soda.data.views import world_eval_set
    from soda.eval.runner import EvalSizes, encode_set, run_labelfree

    monkeypatch.setenv("SODA_CACHE", str(tmp_path / "cache"))
    model = api.load_model(str(make_tiny_checkpoint(tmp_path / "tiny")))
    data = world_eval_set(160, model.res, split="test", seed=1, camera="fixed")
    codes = encode_set(model, data["images"], data["rays"])
    fac = data["factors"].numpy()
    sizes = EvalSizes(edit_scenes=2, edit_strengths="-2,2")
    quick = {"n_train": 200, "n_test": 50, "steps": 15, "batch_size": 16}
    a, Da = run_labelfree(model, codes[:100], codes[100:], fac[:100], fac[100:], sizes, classifier=quick)
    scrambled = np.random.default_rng(0).permutation(fac)  # rows shuffled: every label now belongs to another scene
    b, Db = run_labelfree(model, codes[:100], codes[100:], scrambled[:100], scrambled[100:], sizes, classifier=quick)
    assert len(Da) == len(Db) and all(_same(x, y) for x, y in zip(Da, Db, strict=True))  # the same, bit for bit
    assert a["best"] == b["best"]  # the sliders' scores come from the classifiers, not from the given labels
    assert a["section_dci_k"] != b["section_dci_k"]  # while the label-scored DCI does see the scramble
    assert "without labels" in a["directions_from"] and a["n_shown"] == len(Da)


def _same(x, y) -> bool:
    if hasattr(x, "tensors"):
        return type(x) is type(y) and all(torch.equal(v, y.tensors()[k]) for k, v in x.tensors().items())
    return torch.equal(x, y)


def test_a_ring_in_the_latents_becomes_one_rotation_slider():
    """Points on a circle in dims 0-1 (a hue) beside two independent uniform dims: FastICA splits the circle into two
    components, ica_rings joins them into one RingRotation; ten units are a full turn (back to the start), five turn
    each point to the opposite side of the ring, and the other dims never move."""
    from soda.sliders.moves import RingRotation

    g = torch.Generator().manual_seed(0)
    ang = torch.rand(3000, generator=g) * 2 * torch.pi
    rest = torch.rand(3000, 2, generator=g) * 2 - 1
    Z = torch.cat([torch.stack([3 * ang.cos(), 3 * ang.sin()], 1), rest], 1)
    sliders = LF.fit_label_free(Z, [slice(0, 4)], "ica_rings", n=4)
    rings = [s for s in sliders if isinstance(s, RingRotation)]
    assert len(rings) == 1 and len(sliders) == 3  # one rotation + the two independent directions
    ring, z = rings[0], Z[:5]
    assert torch.allclose(ring.move(z, 10.0), z, atol=1e-4)
    half = ring.move(z, 5.0)

    def read(x):
        return (x - ring.center) @ ring.read

    assert torch.allclose(read(half), -read(z), atol=1e-4)  # on the ring's own reading: exactly half a turn
    c = ring.center[:2]  # in z (ICA's plane is fitted, not exact): the circle's points go to the opposite side
    cos = torch.nn.functional.cosine_similarity(half[:, :2] - c, -(z[:, :2] - c), dim=1)
    assert (cos > 0.99).all() and (half[:, 2:] - z[:, 2:]).abs().max() < 0.15
    assert torch.allclose(ring.move(z, torch.tensor([0.0, 10, 10, 10, 10])), z, atol=1e-4)  # per-row amounts
