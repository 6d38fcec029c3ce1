"""The training engine: one loop for every method (InPO, Diffusion-DPO, SFT, KTO) and model family.

- :mod:`.batches`    which pairs each process sees at each optimizer step (layout-independent)
- :mod:`.objectives` one function per method: models + inversion + losses → loss and metrics
- :mod:`.optim`      optimizer and learning-rate schedule from the config
- :mod:`.checkpoint` atomic checkpoints, keep-last-K, resume
- :mod:`.loop`       the accelerate loop: accumulation, precision, clipping, guards, logging
"""
