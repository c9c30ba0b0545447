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


# ---------------------------------------------------------------------------------------------------------------------
# The world's orbit rig (soda.data.cameras owns it; soda.data.world re-exports its names)
# ---------------------------------------------------------------------------------------------------------------------
def _angles_of(eye: torch.Tensor) -> torch.Tensor:
    """Camera centres (B,3) -> (B,3) (azimuth deg, elevation deg, radius) about LOOK_AT: the inverse of the orbit."""
    off = eye.double() - torch.tensor(cameras.LOOK_AT, dtype=torch.float64)
    r = off.norm(dim=1)
    az = torch.rad2deg(torch.atan2(off[:, 0], -off[:, 1]))  # azimuth 0 on the -y side, positive towards +x
    el = torch.rad2deg(torch.asin(off[:, 2] / r))
    return torch.stack([az, el, r], 1)


def test_spherical_camera_known_positions():
    K, c2w = cameras.spherical_camera(0.0, 0.0, 4.0, res=32)
    assert torch.allclose(c2w[0, :3, 3], torch.tensor([0.0, -4.0, 0.5]), atol=1e-6)  # azimuth 0: on the -y side
    K, c2w = cameras.spherical_camera(90.0, 30.0, 2.0, res=32)
    expected = torch.tensor([2 * math.cos(math.radians(30)), 0.0, 0.5 + 2 * math.sin(math.radians(30))])
    assert torch.allclose(c2w[0, :3, 3], expected, atol=1e-5)
    assert torch.equal(K, cameras.intrinsics(32, cameras.FOV_DEG))


def test_orbit_poses_look_at_the_target_from_the_given_angles():
    angles = cameras.sample_camera_angles(200, torch.Generator().manual_seed(3))
    c2w = cameras.orbit_pose(angles[:, 0], angles[:, 1], angles[:, 2])
    eye = c2w[:, :3, 3]
    target = torch.tensor(cameras.LOOK_AT)
    assert torch.allclose(c2w[:, :3, 2], torch.nn.functional.normalize(target - eye, dim=1), atol=1e-6)  # z at target
    assert torch.allclose(c2w[:, 2, 0], torch.zeros(200), atol=1e-6)  # x (right) horizontal: no roll
    assert (c2w[:, 2, 1] < 0).all()  # y (down) points down
    assert torch.allclose(_angles_of(eye).float(), angles, atol=1e-4)
    K = cameras.intrinsics(32, cameras.FOV_DEG, 200)
    uv = cameras.project(target.expand(200, 1, 3), K, c2w)[:, 0]
    assert torch.allclose(uv, torch.full((200, 2), 16.0), atol=1e-3)  # the target is at the principal point


def test_sampled_cameras_stay_in_the_room_and_in_their_ranges():
    from soda.data import world

    g = torch.Generator().manual_seed(1)
    K, c2w = cameras.sample_cameras(500, g, res=32)
    eye = c2w[:, :3, 3]
    assert (eye[:, :2].abs() < world.ROOM_HALF).all() and (eye[:, 2] > 0).all()
    angles = _angles_of(eye)
    for col, (lo, hi) in enumerate(cameras.CAMERA_RANGES.values()):
        assert (angles[:, col] >= lo - 1e-4).all() and (angles[:, col] <= hi + 1e-4).all()
    assert cameras.ORIGIN_SCALE == world.ROOM_HALF  # ray origins are scaled by the room's half-size


def test_ray_through_the_principal_point_is_the_forward_axis():
    # An odd resolution puts the centre of pixel (res // 2, res // 2) exactly at the principal point (res/2, res/2).
    angles = cameras.sample_camera_angles(6, torch.Generator().manual_seed(5))
    K, c2w = cameras.spherical_camera(angles[:, 0], angles[:, 1], angles[:, 2], res=9)
    origins, dirs = cameras.ray_bundle(K, c2w, 9, 9)
    assert torch.allclose(dirs[:, 4, 4], c2w[:, :3, 2], atol=1e-6)
    to_target = torch.nn.functional.normalize(torch.tensor(cameras.LOOK_AT) - origins[:, 4, 4], dim=1)
    assert torch.allclose(dirs[:, 4, 4], to_target, atol=1e-6)


def test_pose_to_rays_to_pose_round_trip():
    # The ray channels the denoiser reads carry the whole camera: the origin channels give the centre (hence the
    # orbit angles), the centre ray the forward axis, and neighbouring rays the right and down axes.
    angles = torch.tensor([[-55.0, 12.0, 3.6], [0.0, 25.0, 4.0], [48.0, 38.0, 4.4]])
    cams = [cameras.Camera(*map(float, a)) for a in angles]
    rays = torch.cat([c.rays(9, n_fourier=2) for c in cams])  # (3, 30, 9, 9)
    eye = rays[:, 0:3].mean(dim=(2, 3)) * cameras.ORIGIN_SCALE
    assert torch.allclose(_angles_of(eye).float(), angles, atol=1e-4)
    dirs = rays[:, 3:6]
    c2w = cameras.orbit_pose(angles[:, 0], angles[:, 1], angles[:, 2])
    assert torch.allclose(dirs[:, :, 4, 4], c2w[:, :3, 2], atol=1e-6)
    right = torch.nn.functional.normalize(dirs[:, :, 4, 5] - dirs[:, :, 4, 3], dim=1)
    down = torch.nn.functional.normalize(dirs[:, :, 5, 4] - dirs[:, :, 3, 4], dim=1)
    assert torch.allclose(right, c2w[:, :3, 0], atol=1e-5) and torch.allclose(down, c2w[:, :3, 1], atol=1e-5)


def test_camera_object_matches_the_batched_forms():
    cam = cameras.Camera(20.0, 30.0, 4.0)
    K, c2w = cam.matrices(16, batch=3)
    K2, c2w2 = cameras.spherical_camera(20.0, 30.0, 4.0, 16, 3)
    assert torch.equal(K, K2) and torch.equal(c2w, c2w2)
    assert torch.equal(cam.rays(16, 1, 3), cameras.ray_channels(K, c2w, 16, 16, 1))
    Kd, cd = cameras.default_camera(16, 2)
    assert torch.equal(cd, cameras.Camera.default().matrices(16, 2)[1])
    assert cameras.Camera.default().as_dict() == cameras.DEFAULT_CAMERA
    assert cameras.Camera.from_dict(cam.as_dict()) == cam


def test_camera_from_bad_input_says_what_is_wrong():
    for bad, word in (
        ({"azimuth": 1, "elevation": 2}, "radius"),
        ({"azimuth": "x"}, "azimuth"),
        ({"azimuth": 0, "elevation": math.nan, "radius": 4}, "elevation"),
        ([1, 2, 3], "dict"),
    ):
        try:
            cameras.Camera.from_dict(bad)
        except ValueError as e:
            assert word in str(e)
        else:
            raise AssertionError(f"{bad} was accepted")


def test_outside_ranges_names_each_extrapolated_coordinate():
    assert cameras.Camera.default().outside_ranges() == []
    lo_az, hi_az = cameras.AZIMUTH_RANGE
    notes = cameras.Camera(hi_az + 10, cameras.ELEVATION_RANGE[0], cameras.RADIUS_RANGE[0] - 0.5).outside_ranges()
    assert len(notes) == 2 and "azimuth" in notes[0] and "radius" in notes[1]
    assert cameras.Camera(lo_az, 20.0, 4.0).outside_ranges() == []  # the ranges include their ends


def test_orbit_cameras_sweep_the_range_and_loop():
    cams = cameras.orbit_cameras(8)
    az = [c.azimuth for c in cams]
    lo, hi = cameras.AZIMUTH_RANGE
    assert az[0] == lo and abs(az[4] - hi) < 1e-9  # out at frame 0, the far end half-way
    assert all(abs(az[k] - az[8 - k]) < 1e-9 for k in range(1, 8))  # and back the same way
    d = cameras.Camera.default()
    assert all(c.elevation == d.elevation and c.radius == d.radius for c in cams)


def test_ray_channel_count_and_its_inverse():
    for n in range(6):
        assert cameras.fourier_bands(cameras.ray_channel_count(n)) == n
    for bad in (0, 5, 7, 17, -6):
        try:
            cameras.fourier_bands(bad)
        except ValueError as e:
            assert "6 + 12" in str(e)
        else:
            raise AssertionError(f"{bad} channels accepted")


def test_subpixel_directions_go_through_their_sample_positions():
    K = cameras.intrinsics(5, 50.0)
    key = tuple(float(v) for v in (K[0, 0, 0], K[0, 1, 1], K[0, 0, 2], K[0, 1, 2]))
    d = cameras.subpixel_directions(key, 5, 2, "cpu").view(3, 2, 2, 5, 5)  # (xyz, sy, sx, v, u)
    uvw = torch.einsum("ij,jabvu->abvui", K[0], d)
    uv = uvw[..., :2] / uvw[..., 2:]
    sy, sx, v, u = torch.meshgrid(*(torch.arange(k, dtype=torch.float32) for k in (2, 2, 5, 5)), indexing="ij")
    expected = torch.stack([u + (sx + 0.5) / 2, v + (sy + 0.5) / 2], dim=-1)
    assert torch.allclose(uv, expected, atol=1e-4)
    assert torch.allclose(d.norm(dim=0), torch.ones(2, 2, 5, 5), atol=1e-6)
    one = cameras.subpixel_directions(key, 5, 1, "cpu").view(3, 5, 5).permute(1, 2, 0)
    assert torch.allclose(one, torch.nn.functional.normalize(cameras.camera_directions(K, 5, 5)[0], dim=-1), atol=1e-6)
