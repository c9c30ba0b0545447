"""The parts of ``python -m soda.train`` (the loop itself, read top to bottom, is soda/train.py):

- ``setup``: processes and devices (DDP), bf16 autocast choice, the optimizer;
- ``checkpoints``: the run-state store (save / load / resume / crash recovery), written atomically;
- ``samples``: sample grids and the held-out loss of a fixed batch.
"""
