"""Real-format loaders, each on a tiny file written here in exactly that format; malformed files give clear errors."""

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from soda.data import cameras
from soda.data.formats import FormatError, load_npz_arrays, to_rgb
from soda.data.formats.celeba import CelebA
from soda.data.formats.dsprites import DSprites
from soda.data.formats.folder import ImageFolder
from soda.data.formats.mpi3d import MPI3D
from soda.data.formats.nmr import NMR
from soda.data.formats.shapes3d import GRID_VALUES, Shapes3D
from soda.data.formats.srn import SRN


def _u8(rng, *shape):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _as_signed(arr):
    return torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1) / 127.5 - 1


# ---------------------------------------------------------------------------------------------------------------------
# Shapes3D
# ---------------------------------------------------------------------------------------------------------------------
def _write_shapes3d(path, images, labels):
    with h5py.File(path, "w") as fh:
        fh.create_dataset("images", data=images)
        fh.create_dataset("labels", data=labels)


def test_shapes3d_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    idx = np.stack([rng.integers(0, len(g), size=6) for g in GRID_VALUES], axis=1)
    labels = np.stack([GRID_VALUES[k][idx[:, k]] for k in range(6)], axis=1).astype(np.float64)
    images = _u8(rng, 6, 64, 64, 3)
    _write_shapes3d(tmp_path / "3dshapes.h5", images, labels)
    ds = Shapes3D(tmp_path / "3dshapes.h5")
    assert len(ds) == 6
    for i in range(6):
        item = ds[i]
        assert torch.equal(item["image"], _as_signed(images[i]))
        assert item["factors"].tolist() == idx[i].tolist()
        assert item["values"].tolist() == labels[i].tolist()
    assert Shapes3D(tmp_path / "3dshapes.h5", res=32)[0]["image"].shape == (3, 32, 32)
    assert torch.equal(Shapes3D(tmp_path / "3dshapes.h5", in_memory=True)[2]["image"], ds[2]["image"])


def test_shapes3d_off_grid_labels_use_unique_inverse(tmp_path):
    labels = np.array([[5.0, 0, 0, 1, 0, 0], [2.0, 0, 0, 1, 0, 0], [5.0, 0, 0, 1, 0, 0]])  # column 0 off the grid
    _write_shapes3d(tmp_path / "s.h5", np.zeros((3, 64, 64, 3), np.uint8), labels)
    assert Shapes3D(tmp_path / "s.h5").factors[:, 0].tolist() == [1, 0, 1]


def test_shapes3d_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5.*Shapes3D"):
        Shapes3D(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "nolabels.h5", "w") as fh:
        fh.create_dataset("images", data=np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(FormatError, match=r"nolabels.h5.*missing datasets \['labels'\]"):
        Shapes3D(tmp_path / "nolabels.h5")
    _write_shapes3d(tmp_path / "float.h5", np.zeros((2, 64, 64, 3), np.float32), np.zeros((2, 6)))
    with pytest.raises(FormatError, match="float.h5: 'images'"):
        Shapes3D(tmp_path / "float.h5")
    _write_shapes3d(tmp_path / "short.h5", np.zeros((2, 64, 64, 3), np.uint8), np.zeros((3, 6)))
    with pytest.raises(FormatError, match="short.h5: 'labels'"):
        Shapes3D(tmp_path / "short.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(FormatError, match="text.h5: cannot open as HDF5"):
        Shapes3D(tmp_path / "text.h5")


# ---------------------------------------------------------------------------------------------------------------------
# MPI3D and dSprites
# ---------------------------------------------------------------------------------------------------------------------
def test_mpi3d_round_trip_memmapped_and_compressed(tmp_path):
    rng = np.random.default_rng(1)
    sizes = (2, 1, 1, 1, 1, 2, 3)
    images = _u8(rng, 12, 64, 64, 3)
    np.savez(tmp_path / "mpi3d_toy.npz", images=images)
    np.savez_compressed(tmp_path / "mpi3d_real.npz", images=images)
    for name in ("mpi3d_toy.npz", "mpi3d_real.npz"):
        ds = MPI3D(tmp_path / name, factor_sizes=sizes)
        assert len(ds) == 12
        item = ds[7]
        assert torch.equal(item["image"], _as_signed(images[7]))
        assert item["factors"].tolist() == list(np.unravel_index(7, sizes))
    assert isinstance(MPI3D(tmp_path / "mpi3d_toy.npz", factor_sizes=sizes).images, np.memmap)


def test_mpi3d_malformed(tmp_path):
    np.savez(tmp_path / "wrongkey.npz", imgs=np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(FormatError, match=r"wrongkey.npz: missing arrays \['images'\].*found \['imgs'\]"):
        MPI3D(tmp_path / "wrongkey.npz")
    np.savez(tmp_path / "count.npz", images=np.zeros((5, 64, 64, 3), np.uint8))
    with pytest.raises(FormatError, match="count.npz: 5 images but factor sizes"):
        MPI3D(tmp_path / "count.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(FormatError, match="junk.npz: not an .npz"):
        MPI3D(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        MPI3D(tmp_path / "nothere.npz")


def test_dsprites_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 2, size=(4, 64, 64), dtype=np.uint8)
    classes = np.array([[0, 1, 2, 3, 4, 5], [0, 2, 5, 39, 31, 0], [0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 1, 1]], np.int64)
    metadata = np.array({"description": "pickled dict, never loaded"}, dtype=object)
    np.savez_compressed(tmp_path / "dsprites.npz", imgs=imgs, latents_classes=classes, metadata=metadata)
    ds = DSprites(tmp_path / "dsprites.npz")
    assert len(ds) == 4 and ds.factor_sizes == (1, 3, 6, 40, 32, 32)
    item = ds[1]
    assert item["factors"].tolist() == classes[1].tolist()
    expected = torch.from_numpy(imgs[1].astype(np.float32) * 2 - 1)[None].expand(3, -1, -1)
    assert torch.equal(item["image"], expected)


def test_dsprites_malformed(tmp_path):
    np.savez(tmp_path / "d.npz", imgs=np.zeros((2, 64, 64), np.uint8), latents_classes=np.zeros((2, 5), np.int64))
    with pytest.raises(FormatError, match="d.npz: 'latents_classes'"):
        DSprites(tmp_path / "d.npz")
    np.savez(tmp_path / "e.npz", imgs=np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(FormatError, match=r"e.npz: missing arrays \['latents_classes'\]"):
        DSprites(tmp_path / "e.npz")


def test_npz_helper_falls_back_for_compressed_members(tmp_path):
    np.savez_compressed(tmp_path / "c.npz", a=np.arange(5))
    assert load_npz_arrays(tmp_path / "c.npz", ["a"], "test")["a"].tolist() == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------------------------------------------------
# Image folder
# ---------------------------------------------------------------------------------------------------------------------
def test_folder_converts_every_mode_to_rgb(tmp_path):
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / "a_transparent.png")  # fully transparent -> white
    pal = Image.new("P", (8, 8))
    pal.putpalette([0, 0, 255] + [0] * 765)
    pal.save(tmp_path / "b_palette.png")  # index 0 -> blue
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path / "c_16bit.png")  # 16-bit white
    Image.new("L", (8, 8), 0).save(tmp_path / "d_gray.png")
    Image.new("LA", (8, 8), (0, 255)).save(tmp_path / "e_la.png")  # opaque black
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (8, 8), (0, 255, 0)).save(tmp_path / "sub" / "f.jpg", quality=100)
    ds = ImageFolder(tmp_path, res=4)
    names = ["a_transparent.png", "b_palette.png", "c_16bit.png", "d_gray.png", "e_la.png", "f.jpg"]
    assert [p.name for p in ds.files] == names
    expect = {0: (1, 1, 1), 1: (-1, -1, 1), 2: (1, 1, 1), 3: (-1, -1, -1), 4: (-1, -1, -1), 5: (-1, 1, -1)}
    for i, rgb in expect.items():
        img = ds[i]["image"]
        assert img.shape == (3, 4, 4)
        assert torch.allclose(img.mean(dim=(1, 2)), torch.tensor(rgb, dtype=torch.float32), atol=0.02), ds.files[i]
    assert "labels" not in ds[0]


def test_folder_centre_crops_before_resizing(tmp_path):
    arr = np.zeros((10, 30, 3), np.uint8)
    arr[:, :10] = (255, 0, 0)
    arr[:, 10:20] = (0, 255, 0)  # the centred square
    arr[:, 20:] = (255, 0, 0)
    Image.fromarray(arr).save(tmp_path / "wide.png")
    img = ImageFolder(tmp_path, res=5)[0]["image"]
    assert torch.allclose(img, torch.tensor([-1.0, 1.0, -1.0])[:, None, None].expand(3, 5, 5), atol=1e-6)


def test_folder_labels_csv(tmp_path):
    for name in ("x.png", "y.png", "z.png"):
        Image.new("RGB", (6, 6)).save(tmp_path / name)
    (tmp_path / "labels.csv").write_text("filename,digit,animal\nz.png,7,dog\nx.png,3,cat\n")
    ds = ImageFolder(tmp_path, res=6)
    assert len(ds) == 2 and ds.label_names == ["digit", "animal"]
    assert ds.label_classes == {"animal": ["cat", "dog"]}
    assert ds[0]["labels"].tolist() == [7, 1] and ds[1]["labels"].tolist() == [3, 0]
    assert ds[0]["path"].endswith("z.png")
    assert len(ImageFolder(tmp_path, res=6, labels=None)) == 3


def test_folder_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match="nofolder"):
        ImageFolder(tmp_path / "nofolder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images found"):
        ImageFolder(tmp_path / "empty")
    Image.new("RGB", (6, 6)).save(tmp_path / "ok.png")
    (tmp_path / "labels.csv").write_text("filename,label\nok.png,1\ngone.png,2\n")
    with pytest.raises(FileNotFoundError, match="labels.csv: line 3 names .*gone.png"):
        ImageFolder(tmp_path)
    (tmp_path / "labels.csv").write_text("filename,label\nok.png,1,extra\n")
    with pytest.raises(FormatError, match="labels.csv: line 2 has 3 fields"):
        ImageFolder(tmp_path)
    (tmp_path / "labels.csv").unlink()
    (tmp_path / "broken.png").write_bytes(b"not a png")
    ds = ImageFolder(tmp_path)
    with pytest.raises(FormatError, match="broken.png: cannot read as an image"):
        ds[0]


def test_to_rgb_keeps_plain_rgb():
    arr = np.random.default_rng(3).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(to_rgb(Image.fromarray(arr))), arr)


# ---------------------------------------------------------------------------------------------------------------------
# CelebA
# ---------------------------------------------------------------------------------------------------------------------
def _write_celeba(root, n=4):
    (root / "img_align_celeba").mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        Image.new("RGB", (18, 22), (40 * i, 0, 0)).save(root / "img_align_celeba" / name, quality=100)
    attrs = ["Smiling", "Male", "Young"]
    rows = [[1, -1, 1], [-1, -1, 1], [1, 1, -1], [-1, 1, -1]][:n]
    lines = [str(n), "  ".join(attrs)] + [f"{nm}  " + " ".join(f"{v:2d}" for v in r) for nm, r in zip(names, rows)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{nm} {p}\n" for nm, p in zip(names, [0, 0, 1, 2])))
    return names, rows


def test_celeba_round_trip(tmp_path):
    names, rows = _write_celeba(tmp_path)
    train = CelebA(tmp_path, split="train", res=8, crop=None)
    assert len(train) == 2 and train.attr_names == ["Smiling", "Male", "Young"]
    assert train[0]["labels"].tolist() == [1, 0, 1] and train[1]["labels"].tolist() == [0, 0, 1]
    assert train[1]["image"].shape == (3, 8, 8)
    assert torch.allclose(train[1]["image"][0].mean(), torch.tensor(40 / 127.5 - 1), atol=0.03)
    assert len(CelebA(tmp_path, split="valid")) == 1 and len(CelebA(tmp_path, split="test")) == 1
    assert len(CelebA(tmp_path, split="all")) == 4


def test_celeba_malformed(tmp_path):
    _write_celeba(tmp_path)
    text = (tmp_path / "list_attr_celeba.txt").read_text().replace("\n3 ", "\n5 ", 1)
    (tmp_path / "list_attr_celeba.txt").write_text("7\n" + text.split("\n", 1)[1])
    with pytest.raises(FormatError, match="list_attr_celeba.txt: line 1 announces 7 images but 4 rows follow"):
        CelebA(tmp_path)
    _write_celeba(tmp_path / "b")
    (tmp_path / "b" / "list_eval_partition.txt").write_text("000001.jpg 5\n")
    with pytest.raises(FormatError, match="list_eval_partition.txt: line 1"):
        CelebA(tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "img_align_celeba").mkdir()
    with pytest.raises(FileNotFoundError, match="list_attr_celeba.txt"):
        CelebA(tmp_path / "c")


# ---------------------------------------------------------------------------------------------------------------------
# Multi-view: SRN and NMR
# ---------------------------------------------------------------------------------------------------------------------
def _poses(n):
    eye = torch.tensor([[2.0 * np.cos(a), 2.0 * np.sin(a), 1.0] for a in np.linspace(0, 3, n)], dtype=torch.float32)
    return cameras.look_at(eye, torch.zeros(n, 3))


def test_srn_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    obj = tmp_path / "1a2b"
    (obj / "rgb").mkdir(parents=True)
    (obj / "pose").mkdir()
    (obj / "intrinsics.txt").write_text("17.5 8. 8. 0.\n0. 0. 0.\n1.\n16 16\n")
    c2w = _poses(3)
    images = _u8(rng, 3, 16, 16, 3)
    for v in range(3):
        Image.fromarray(images[v]).save(obj / "rgb" / f"{v:06d}.png")
        (obj / "pose" / f"{v:06d}.txt").write_text(" ".join(f"{x:.9g}" for x in c2w[v].flatten().tolist()) + "\n")
    ds = SRN(tmp_path)
    assert len(ds) == 3 and ds.objects == ["1a2b"] and ds.views_of(0) == [0, 1, 2]
    item = ds[2]
    assert torch.equal(item["image"], _as_signed(images[2]))
    assert torch.allclose(item["c2w"], c2w[2], atol=1e-6)
    assert torch.allclose(item["K"], torch.tensor([[17.5, 0, 8], [0, 17.5, 8], [0, 0, 1]]))
    small = SRN(tmp_path, res=8)[0]
    assert small["image"].shape == (3, 8, 8)
    assert torch.allclose(small["K"], torch.tensor([[8.75, 0, 4], [0, 8.75, 4], [0, 0, 1]]))


def test_srn_malformed(tmp_path):
    obj = tmp_path / "o"
    (obj / "rgb").mkdir(parents=True)
    (obj / "pose").mkdir()
    Image.new("RGB", (4, 4)).save(obj / "rgb" / "000000.png")
    (obj / "intrinsics.txt").write_text("nonsense\n")
    with pytest.raises(FormatError, match="intrinsics.txt: first line must be 'f cx cy 0'"):
        SRN(tmp_path)
    (obj / "intrinsics.txt").write_text("2 2 2 0\n")
    with pytest.raises(FileNotFoundError, match="000000.txt: no pose for view 000000.png"):
        SRN(tmp_path)
    (obj / "pose" / "000000.txt").write_text("1 0 0 0 0 1 0 0 0 0 1 0 0 0 0\n")
    with pytest.raises(FormatError, match="000000.txt: expected 16 numbers .* got 15"):
        SRN(tmp_path)[0]


def _write_nmr(root, use_inverse=False):
    rng = np.random.default_rng(5)
    obj = root / "02958343" / "car1"
    (obj / "image").mkdir(parents=True)
    c2w = _poses(3)
    w2c = cameras.invert_pose(c2w).numpy()
    cams, images = {}, _u8(rng, 3, 64, 64, 3)
    for v in range(3):
        Image.fromarray(images[v]).save(obj / "image" / f"{v:04d}.png")
        if use_inverse:
            cams[f"world_mat_inv_{v}"] = c2w[v].numpy()
        else:
            cams[f"world_mat_{v}"] = w2c[v][:3]  # 3x4, as DVR stores it
        cams[f"camera_mat_{v}"] = np.diag([3.7320509, 3.7320509, 1.0, 1.0])
    np.savez(obj / "cameras.npz", **cams)
    (root / "02958343" / "softras_train.lst").write_text("car1\n")
    (root / "02958343" / "softras_test.lst").write_text("\n")
    return c2w, images


@pytest.mark.parametrize("use_inverse", [False, True])
def test_nmr_round_trip(tmp_path, use_inverse):
    c2w, images = _write_nmr(tmp_path, use_inverse)
    ds = NMR(tmp_path, split="train")
    assert len(ds) == 3 and ds.objects == [("02958343", "car1")]
    item = ds[1]
    assert torch.equal(item["image"], _as_signed(images[1]))
    assert torch.allclose(item["c2w"], c2w[1], atol=1e-5)
    f = 3.7320509 * 32
    assert torch.allclose(item["K"], torch.tensor([[f, 0, 32], [0, f, 32], [0, 0, 1]]), atol=1e-4)
    assert item["category"] == "02958343" and item["view"] == 1
    assert len(NMR(tmp_path, split="test")) == 0


def test_nmr_malformed(tmp_path):
    _write_nmr(tmp_path)
    (tmp_path / "02958343" / "softras_val.lst").write_text("car1\nghost\n")
    with pytest.raises(FileNotFoundError, match="ghost.*softras_val.lst"):
        NMR(tmp_path, split="val")
    np.savez(tmp_path / "02958343" / "car1" / "cameras.npz", world_mat_0=np.eye(4))
    with pytest.raises(FormatError, match="cameras.npz: no camera_mat_0"):
        NMR(tmp_path)[0]
    with pytest.raises(FileNotFoundError, match="softras_train.lst"):
        NMR(tmp_path / "02958343")
