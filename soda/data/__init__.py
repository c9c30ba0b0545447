"""Data: the procedural world (cameras.py: camera geometry, orbit rig and rays; scenes.py: factors and split;
shapes.py: ray-object intersections; world.py: the renderer), view-pair streams (views.py, augment.py, seeds.py),
evaluation sets (evalsets.py), and loaders for real data files (formats/). See docs/DATA.md."""
