"""The procedural world: factor grid, held-out split, and exact shading at known pixels (cameras: test_cameras)."""

import math

import pytest
import torch

from soda.data import cameras, world


def _factors(floor=0, wall=3, obj=6, scale=7, shape=0, orient=7, n=1):
    return torch.tensor([[floor, wall, obj, scale, shape, orient]] * n)


def _pixel(factors, eye, target, res=16, **kw):
    """Colour of the pixel block at the principal point (the 2x2 pixels around it are averaged)."""
    c2w = cameras.look_at(torch.tensor([eye], dtype=torch.float32), torch.tensor([target], dtype=torch.float32))
    K = cameras.intrinsics(res, 10.0)
    img = world.render(factors, K, c2w, res, **kw)
    return img[0, :, res // 2 - 1 : res // 2 + 1, res // 2 - 1 : res // 2 + 1].mean(dim=(1, 2))


# ---------------------------------------------------------------------------------------------------------------------
# Factors and the split
# ---------------------------------------------------------------------------------------------------------------------
def test_factor_grid_sizes_and_values():
    assert world.FACTOR_NAMES == ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert world.FACTOR_SIZES == (10, 10, 10, 8, 4, 15)
    assert world.N_COMBINATIONS == 480000
    assert world.SHAPE_NAMES == ("cube", "cylinder", "sphere", "capsule")
    assert world.SCALES[0] == pytest.approx(0.75) and world.SCALES[-1] == pytest.approx(1.25)
    assert world.ORIENTATIONS_DEG[0] == pytest.approx(-30) and world.ORIENTATIONS_DEG[-1] == pytest.approx(30)
    assert world.ORIENTATIONS_DEG[7] == pytest.approx(0.0)
    top = torch.tensor([[9, 9, 9, 7, 3, 14]])
    vals = world.factor_values(top)[0].tolist()
    assert vals == pytest.approx([0.9, 0.9, 0.9, 1.25, 3.0, 30.0])
    bottom = world.factor_values(torch.zeros(1, 6, dtype=torch.long))[0].tolist()
    assert bottom == pytest.approx([0, 0, 0, 0.75, 0, -30])


def test_ravel_unravel_round_trip_in_shapes3d_order():
    flat = torch.arange(0, world.N_COMBINATIONS, 997)
    f = world.unravel_factors(flat)
    assert torch.equal(world.ravel_factors(f), flat)
    assert (f >= 0).all() and (f < torch.tensor(world.FACTOR_SIZES)).all()
    # Row-major: the last factor (orientation) varies fastest.
    assert world.unravel_factors(torch.tensor([1]))[0].tolist() == [0, 0, 0, 0, 0, 1]
    assert world.unravel_factors(torch.tensor([15]))[0].tolist() == [0, 0, 0, 0, 1, 0]


def test_split_holds_out_about_ten_percent_and_is_fixed():
    test_idx, train_idx = world.split_indices("test"), world.split_indices("train")
    assert len(test_idx) + len(train_idx) == world.N_COMBINATIONS
    assert 0.09 < len(test_idx) / world.N_COMBINATIONS < 0.11
    assert not set(test_idx[:5000].tolist()) & set(train_idx.tolist())
    all_f = world.unravel_factors(torch.arange(world.N_COMBINATIONS))
    mask = world.in_test_split(all_f)
    assert torch.equal(torch.arange(world.N_COMBINATIONS)[mask], test_idx)
    # Every single factor value still occurs in training: only combinations are held out.
    train_f = world.unravel_factors(train_idx)
    for k, size in enumerate(world.FACTOR_SIZES):
        assert torch.unique(train_f[:, k]).numel() == size


def test_held_out_scenes_never_sampled_for_training():
    g = torch.Generator().manual_seed(0)
    train = world.sample_factors(20000, g, "train")
    test = world.sample_factors(2000, g, "test")
    assert not world.in_test_split(train).any()
    assert world.in_test_split(test).all()
    assert train.dtype == torch.long and train.shape == (20000, 6)
    with pytest.raises(ValueError, match="split"):
        world.sample_factors(1, g, "validation")


# ---------------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------------
def test_render_shapes_range_and_determinism():
    g = torch.Generator().manual_seed(2)
    f = world.sample_factors(12, g)
    K, c2w = world.sample_cameras(12, g, res=24)
    a = world.render(f, K, c2w, 24)
    b = world.render(f.clone(), K.clone(), c2w.clone(), 24)
    assert a.shape == (12, 3, 24, 24) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    for res in (8, 32):
        K2, c2 = world.default_camera(res, 2)
        assert world.render(f[:2], K2, c2, res, supersample=1).shape == (2, 3, res, res)


def test_camera_changes_the_image_not_the_scene():
    f = _factors(n=2)
    K, c2w = world.spherical_camera(torch.tensor([-20.0, 35.0]), 20.0, 4.0, res=16)
    img = world.render(f, K, c2w, 16)
    assert (img[0] - img[1]).abs().max() > 0.1


def test_floor_pixel_has_the_exact_lambert_colour():
    f = _factors(floor=4)
    albedo = world.scene_colours(f)[0, 0]
    lit = albedo * (world.AMBIENT + (1 - world.AMBIENT) * world.LIGHT_DIR[2])
    got = _pixel(f, eye=(-3.0, -3.0, 3.0), target=(-3.0, -2.0, 0.0))
    assert torch.allclose(got, lit, atol=1e-5)


def test_wall_pixels_have_the_exact_lambert_colour():
    f = _factors(wall=8)
    albedo = world.scene_colours(f)[0, 1]
    back = albedo * (world.AMBIENT + (1 - world.AMBIENT) * max(0.0, -world.LIGHT_DIR[1]))  # normal -y
    left = albedo * world.AMBIENT  # x = -R, normal +x, faces away from the light
    assert torch.allclose(_pixel(f, eye=(0.0, -1.0, 2.0), target=(0.0, 5.0, 2.0)), back, atol=1e-5)
    assert torch.allclose(_pixel(f, eye=(0.0, -1.0, 2.0), target=(-5.0, -1.0, 2.0)), left, atol=1e-5)


def test_floor_in_the_cube_shadow_is_ambient_only():
    # Cube of half-size 0.625 at the origin, orientation 0. The floor point (1.2, 0.3, 0) sees the light through it:
    # q + s * (-0.7, -0.35, 1) enters |x| <= 0.625 at s = 0.82 with |y| = 0.01 and z = 0.82 < 1.25.
    f = _factors(floor=2, scale=7, shape=0, orient=7)
    albedo = world.scene_colours(f)[0, 0]
    eye, target = (3.0, -1.0, 2.5), (1.2, 0.3, 0.0)
    assert torch.allclose(_pixel(f, eye, target), albedo * world.AMBIENT, atol=1e-5)
    lit = albedo * (world.AMBIENT + (1 - world.AMBIENT) * world.LIGHT_DIR[2])
    assert torch.allclose(_pixel(f, eye, target, shadows=False), lit, atol=1e-5)


def test_object_at_the_principal_point_has_its_face_shading():
    # From azimuth 0 the ray through the image centre enters the cube through its -y face: n.L = -L_y.
    f = _factors(obj=5, scale=7, shape=0, orient=7)
    albedo = world.scene_colours(f)[0, 2]
    K, c2w = world.spherical_camera(0.0, 10.0, 4.0, res=16)
    img = world.render(f, K, c2w, 16)
    expected = albedo * (world.AMBIENT + (1 - world.AMBIENT) * -world.LIGHT_DIR[1])
    assert torch.allclose(img[0, :, 7:9, 7:9].mean(dim=(1, 2)), expected, atol=1e-5)


def test_every_shape_is_visible_and_orientation_acts_only_on_asymmetric_shapes():
    K, c2w = world.default_camera(32, 2)
    for shape in range(4):
        f = torch.cat([_factors(shape=shape, orient=0), _factors(shape=shape, orient=12)])
        w = world.render_geometry(f[:, 4], f[:, 3], f[:, 5], K, c2w, 32)
        coverage = w[:, 2].gt(0).float().mean()
        assert coverage > 0.02, world.SHAPE_NAMES[shape]
        # the symmetric shapes skip the rotation, so the two images differ only if the renderer's arithmetic does:
        # their ray directions are two rows of one matrix product, which no BLAS promises to round identically
        same = bool((w[0] - w[1]).abs().max() <= 1e-6)
        assert same == (world.SHAPE_NAMES[shape] in ("cylinder", "sphere")), world.SHAPE_NAMES[shape]


def test_colours_follow_the_hue_factors():
    f = torch.tensor([[0, 3, 6, 4, 2, 7], [1, 3, 6, 4, 2, 7]])
    K, c2w = world.default_camera(16, 2)
    img = world.render(f, K, c2w, 16)
    w = world.render_geometry(f[:, 4], f[:, 3], f[:, 5], K, c2w, 16)
    floor_only = (w[0, 0] > 0) & (w[0, 1] == 0) & (w[0, 2] == 0)
    wall_only = (w[0, 1] > 0) & (w[0, 0] == 0) & (w[0, 2] == 0)
    assert (img[0, :, floor_only] - img[1, :, floor_only]).abs().max() > 0.05  # floor hue changed
    # walls did not (up to rounding: the two images' rays are two rows of one matrix product)
    assert torch.allclose(img[0, :, wall_only], img[1, :, wall_only], rtol=0, atol=1e-6)


def test_fixed_camera_renderer_matches_render():
    g = torch.Generator().manual_seed(3)
    f = world.sample_factors(16, g)
    fixed = world.FixedCameraRenderer(24)
    K, c2w = fixed.cameras(16)
    assert torch.allclose(fixed(f), world.render(f, K, c2w, 24), atol=1e-5)
    assert torch.allclose(fixed(f[:4]), world.render(f[:4], K[:4], c2w[:4], 24), atol=1e-5)  # from the cache


def test_describe_is_readable():
    assert world.describe(torch.tensor([3, 7, 1, 7, 0, 14])) == "F3 W7 O1 s1.25 cube +30deg"


def test_candidate_culling_never_changes_the_image(monkeypatch):
    # The renderer tests exact intersections only for rays inside the image box of the object's bounding box (and of
    # its floor shadow). With unbounded boxes every ray is tested: the images must be bit-identical. Exact on any
    # processor: both renders compute the ray directions with the same matrix product, and a ray's intersection is
    # then the same chain of element-wise IEEE operations (+ - * / sqrt, comparisons) whether it is gathered among few
    # candidates or among all rays; no reduction or matrix product runs over the candidate set.
    g = torch.Generator().manual_seed(4)
    f = world.sample_factors(48, g)
    K, c2w = world.sample_cameras(40, g, res=24)
    lo, hi = zip(world.AZIMUTH_RANGE, world.ELEVATION_RANGE, world.RADIUS_RANGE)
    corners = torch.tensor([[a, e, r] for a in (lo[0], hi[0]) for e in (lo[1], hi[1]) for r in (lo[2], hi[2])])
    K2, c2w2 = world.spherical_camera(corners[:, 0], corners[:, 1], corners[:, 2], res=24)  # the range's corners
    K, c2w = torch.cat([K, K2]), torch.cat([c2w, c2w2])
    f[40:, 3] = 7  # largest objects for the closest cameras
    culled = world.render(f, K, c2w, 24)
    unbounded = (torch.full((48, 2), -math.inf), torch.full((48, 2), math.inf))
    monkeypatch.setattr(world, "_pixel_rect", lambda points, K, c2w: unbounded)
    assert torch.equal(world.render(f, K, c2w, 24), culled)


def test_caption_uses_plain_words():
    row = torch.tensor([7, 3, 0, 7, 2, 14])  # floor hue 0.7, wall hue 0.3, object hue 0, sphere
    assert world.caption(row) == "red sphere, blue floor, lime wall"
    assert len(world.HUE_NAMES) == len(world.HUES) and len(set(world.HUE_NAMES)) == len(world.HUE_NAMES)
