"""Camera convention: OpenCV axes, pixel centres at +0.5, exact projections and rays."""

import math

import torch

from soda.data import cameras


def _random_cameras(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    eye = torch.randn(n, 3, generator=g) * 3 + torch.tensor([0.0, 0.0, 2.0])
    target = torch.randn(n, 3, generator=g) * 0.3
    return eye, target, cameras.look_at(eye, target)


def test_intrinsics_principal_point_and_focal():
    K = cameras.intrinsics(64, 90.0, batch=3)
    assert K.shape == (3, 3, 3) and K.dtype == torch.float32
    assert torch.allclose(K[:, 0, 2], torch.full((3,), 32.0)) and torch.allclose(K[:, 1, 2], torch.full((3,), 32.0))
    # fov 90 -> half-width = f * tan(45) = f
    assert torch.allclose(K[:, 0, 0], torch.full((3,), 32.0), atol=1e-5)


def test_look_at_is_a_rigid_opencv_pose():
    eye, target, c2w = _random_cameras()
    R = c2w[:, :3, :3]
    assert torch.allclose(R.transpose(1, 2) @ R, torch.eye(3).expand(5, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(5), atol=1e-5)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    assert torch.allclose(R[:, :, 2], forward, atol=1e-5)  # z forward
    assert (R[:, 2, 1] <= 1e-6).all()  # y (down) has no upward world component
    assert torch.allclose(R[:, 2, 0], torch.zeros(5), atol=1e-5)  # x (right) is horizontal
    assert torch.equal(c2w[:, :3, 3], eye)
    assert torch.equal(c2w[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(5, 4))


def test_look_at_known_pose():
    # Camera on -y looking at the origin: right = +x, down = -z, forward = +y.
    c2w = cameras.look_at(torch.tensor([[0.0, -3.0, 0.0]]), torch.zeros(1, 3))
    expected = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    assert torch.allclose(c2w[0, :3, :3], expected, atol=1e-6)


def test_look_at_straight_down_is_finite():
    c2w = cameras.look_at(torch.tensor([[0.0, 0.0, 5.0]]), torch.zeros(1, 3))
    assert torch.isfinite(c2w).all()
    assert torch.allclose(c2w[0, :3, 2], torch.tensor([0.0, 0.0, -1.0]))


def test_origin_projects_to_principal_point():
    eye, _, _ = _random_cameras()
    c2w = cameras.look_at(eye, torch.zeros_like(eye))
    K = cameras.intrinsics(64, 40.0, batch=5)
    uv = cameras.project(torch.zeros(5, 1, 3), K, c2w)
    assert torch.allclose(uv[:, 0], torch.full((5, 2), 32.0), atol=1e-3)
    assert (cameras.camera_depth(torch.zeros(5, 1, 3), c2w) > 0).all()


def test_rays_are_unit_and_start_at_the_camera_centre():
    eye, target, c2w = _random_cameras()
    K = cameras.intrinsics(8, 50.0, batch=5)
    origins, dirs = cameras.ray_bundle(K, c2w, 8, 8)
    assert origins.shape == dirs.shape == (5, 8, 8, 3)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(5, 8, 8), atol=1e-5)
    assert torch.allclose(origins, eye[:, None, None, :].expand(5, 8, 8, 3))


def test_rays_reproject_to_their_pixel_centres():
    eye, target, c2w = _random_cameras()
    K = cameras.intrinsics(6, 60.0, batch=5)
    K[:, 0, 2] += 0.7  # an off-centre principal point must be honoured too
    origins, dirs = cameras.ray_bundle(K, c2w, 6, 6)
    points = (origins + 2.5 * dirs).reshape(5, 36, 3)
    uv = cameras.project(points, K, c2w).reshape(5, 6, 6, 2)
    v, u = torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="ij")
    expected = torch.stack([u + 0.5, v + 0.5], dim=-1).expand(5, 6, 6, 2)
    assert torch.allclose(uv, expected, atol=1e-3)


def test_centre_ray_points_at_the_target():
    eye, target, c2w = _random_cameras()
    K = cameras.intrinsics(2, 40.0, batch=5)  # 2x2: the image centre is the shared corner of the 4 pixels
    _, dirs = cameras.ray_bundle(K, c2w, 2, 2)
    mean_dir = torch.nn.functional.normalize(dirs.mean(dim=(1, 2)), dim=-1)
    assert torch.allclose(mean_dir, torch.nn.functional.normalize(target - eye, dim=-1), atol=1e-5)


def test_ray_channels_layout_and_count():
    _, _, c2w = _random_cameras(2)
    K = cameras.intrinsics(4, 40.0, batch=2)
    for n in (0, 1, 3):
        rc = cameras.ray_channels(K, c2w, 4, 4, n_fourier=n)
        assert rc.shape == (2, cameras.ray_channel_count(n), 4, 4) == (2, 6 + 12 * n, 4, 4)
        assert rc.dtype == torch.float32
    rc = cameras.ray_channels(K, c2w, 4, 4, n_fourier=2)
    origins, dirs = cameras.ray_bundle(K, c2w, 4, 4)
    base = torch.cat([origins / cameras.ORIGIN_SCALE, dirs], dim=-1).permute(0, 3, 1, 2)
    assert torch.allclose(rc[:, :6], base)
    assert torch.allclose(rc[:, 6:12], torch.sin(base * math.pi))
    assert torch.allclose(rc[:, 12:18], torch.cos(base * math.pi))
    assert torch.allclose(rc[:, 18:24], torch.sin(base * 2 * math.pi))


def test_invert_pose_round_trip():
    _, _, c2w = _random_cameras()
    assert torch.allclose(cameras.invert_pose(c2w) @ c2w, torch.eye(4).expand(5, 4, 4), atol=1e-5)


def test_scaled_intrinsics_keep_pixel_centres_consistent():
    # Halving the resolution: the centre of small pixel (u, v) is the corner (2u + 1, 2v + 1) of the big image.
    _, _, c2w = _random_cameras(1)
    K = cameras.intrinsics(8, 50.0)
    small = cameras.scale_intrinsics(K, 0.5)
    origins, dirs = cameras.ray_bundle(small, c2w, 4, 4)
    uv_big = cameras.project((origins + 3.0 * dirs).reshape(1, 16, 3), K, c2w).reshape(4, 4, 2)
    v, u = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    assert torch.allclose(uv_big, torch.stack([2 * u + 1, 2 * v + 1], dim=-1), atol=1e-3)
