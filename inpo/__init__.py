"""inpo: preference alignment of text-to-image diffusion models with DDIM-InPO and its baselines."""

__version__ = "0.1.0"
