"""Data: the procedural world (world.py) and its cameras (cameras.py), view-pair streams and evaluation sets
(views.py), and loaders for real data files (formats/). See docs/DATA.md."""
