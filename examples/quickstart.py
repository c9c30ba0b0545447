"""soda.api in a few lines: encode held-out scenes, move one latent section, decode, change the camera, mix sections.
From any folder once the project is installed (pip install -e .):  python examples/quickstart.py [CHECKPOINT] [OUT]"""

import sys

import numpy as np
import torch
from PIL import Image

from soda import api
from soda.data import world

ckpt = sys.argv[1] if len(sys.argv) > 1 else None  # a folder, a name ("world32") or a hub id; None: the bundled one
model = api.load_model(ckpt)  # EMA weights, eval mode

factors = world.sample_factors(64, torch.Generator().manual_seed(0), split="test")  # 64 held-out scenes
x = world.FixedCameraRenderer(model.res, world.DEFAULT_CAMERA)(factors) * 2 - 1  # (64,3,32,32) in [-1, 1]
z = api.encode(model, x)  # (64, z_dim); camera checkpoints assume api.default_camera()
dirs = api.section_directions(model, z)  # per section: principal directions over these latents, one std each
z2 = api.move_along(z[:1], dirs[3][0], 2.0)  # scene 0 moved along section 3's first direction by +2 std
img = api.decode(model, z2, steps=50, seed=0)  # (1,3,32,32); deterministic for (z, seed, steps, camera)
side = api.decode(model, z2, camera=api.Camera(azimuth=40, elevation=25, radius=4.0))  # a novel view
from_b = [k >= model.n_sections // 2 for k in range(model.n_sections)]  # the later sections from scene 1
mix = api.mix_sections(model, z[0], z[1], from_b)  # a latent (z_dim,): decode it to see the image
mixed = api.decode(model, mix[None], steps=50, seed=0)

row = api.to_uint8(torch.cat([x[:2], img, side, mixed]))  # (5,32,32,3) uint8: scene 0, scene 1, edit, view, mix
out = sys.argv[2] if len(sys.argv) > 2 else "quickstart.png"
Image.fromarray(np.concatenate(list(row), axis=1)).resize((5 * 128, 128), Image.NEAREST).save(out)
print(f"z {tuple(z.shape)}, edited {tuple(img.shape)}, mixed latent {tuple(mix.shape)} -> {out}")
