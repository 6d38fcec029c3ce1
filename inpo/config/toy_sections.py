"""The toy worlds' config sections (``toy:`` in params.yaml), re-exported by :mod:`.sections`."""

from __future__ import annotations

from dataclasses import dataclass, field

from .validate import ConfigError


@dataclass(frozen=True)
class ToyModelConfig:
    """Architecture of the toy base (inpo/toyworld/model.py): pixel-space UNet + tiny CLIP text encoder."""

    unet_channels: list[int] = field(default_factory=lambda: [32, 64, 64])  # attention only at the last level
    layers_per_block: int = field(default=1, metadata={"gt": 0})
    attention_head_dim: int = field(default=8, metadata={"gt": 0})
    norm_groups: int = field(default=8, metadata={"gt": 0})
    text_hidden: int = field(default=64, metadata={"gt": 0})
    text_layers: int = field(default=2, metadata={"gt": 0})
    max_tokens: int = field(default=16, metadata={"gt": 2})  # prompts are 7 words + BOS/EOS


@dataclass(frozen=True)
class ToyBaseConfig:
    """``inpo world base`` in the toy world: train the base from scratch on freshly rendered scenes."""

    out: str = "inpo/assets/toy-base"  # where the recipe writes and ``inpo world pairs`` reads
    steps: int = field(default=3000, metadata={"gt": 0})
    batch_size: int = field(default=64, metadata={"gt": 0})
    learning_rate: float = field(default=1e-3, metadata={"gt": 0})
    warmup_steps: int = field(default=200, metadata={"ge": 0})
    weight_decay: float = field(default=0.0, metadata={"ge": 0})
    max_grad_norm: float = field(default=1.0, metadata={"gt": 0})
    caption_dropout: float = field(default=0.1, metadata={"ge": 0.0, "le": 1.0})  # so CFG works
    ema_decay: float = field(default=0.999, metadata={"ge": 0.0, "lt": 1.0})  # 0 = no EMA
    eval_seeds: int = field(default=8, metadata={"gt": 1})  # samples per held-out prompt in metadata.json


@dataclass(frozen=True)
class ToyPairsConfig:
    """``inpo world pairs`` in the toy world: base samples judged by the oracle, written as Pick-a-Pic v2
    parquet into ``<paths.data>/<world>/pairs`` (:meth:`inpo.worlds.base.World.pairs_dir`)."""

    pairs_per_prompt: int = field(default=20, metadata={"gt": 0})  # 108 training prompts → 2160 pairs
    steps: int = field(default=15, metadata={"gt": 0})  # DDIM steps per image
    guidance: float = field(default=7.5, metadata={"ge": 0})  # as sample.guidance, what evaluation uses
    tie_margin: float = field(default=0.02, metadata={"ge": 0})  # |oracle difference| below this → tie
    corrupt: int = field(default=4, metadata={"ge": 0})  # rows whose image bytes are garbage
    batch_size: int = field(default=256, metadata={"gt": 0})


@dataclass(frozen=True)
class ToyMixedConfig:
    """World ``toy-mixed`` (inpo/toyworld/mixed.py): a weak base trained by the ``toy.base`` recipe on
    flawed renders, and pairs whose two images come from several generators, labelled by a noisy
    Bradley–Terry draw on the oracle difference with a tie band (``toy.pairs`` sets count and sampler)."""

    base_out: str = "inpo/assets/toy-weak-base"  # the weak base: `inpo world base` (world toy-mixed)
    size_scale: float = field(default=0.7, metadata={"gt": 0.0, "le": 1.0})  # half-sizes × this
    grey_pull: float = field(default=0.3, metadata={"ge": 0.0, "le": 1.0})  # colours toward grey
    blur_passes: int = field(default=1, metadata={"ge": 0})  # soft edges: [1,2,1]/4 passes
    wrong_colour_rate: float = field(default=0.1, metadata={"ge": 0.0, "le": 1.0})  # captions
    generators: list[str] = field(default_factory=lambda: ["weak", "strong", "renders"])
    render_colour_shift: float = field(default=0.2, metadata={"ge": 0.0})  # renders' colour error (RGB)
    tie_rate: float = field(default=0.12, metadata={"ge": 0.0, "lt": 1.0})  # smallest |Δ| → ties
    agreement: float = field(default=0.775, metadata={"gt": 0.5, "lt": 1.0})  # with the noiseless label

    def __post_init__(self) -> None:
        known = ("weak", "strong", "renders")
        bad = [g for g in self.generators if g not in known]
        if not self.generators or bad or len(set(self.generators)) != len(self.generators):
            raise ConfigError(
                f"toy.mixed.generators: {self.generators} must be distinct names from {', '.join(known)}"
            )


@dataclass(frozen=True)
class ToyFlowConfig:
    """World ``toy-flow``: world ``toy`` with its base trained by rectified flow (``inpo world base``)."""

    base_out: str = "inpo/assets/toy-flow-base"  # the shipped flow-matching base
    shift: float = field(default=3.0, metadata={"gt": 0.0})  # FlowMatchEulerDiscreteScheduler's (SD3's)


@dataclass(frozen=True)
class ToyConfig:
    """The embedded toy worlds (see inpo/toyworld): ``toy``, ``toy-mixed`` and ``toy-flow``."""

    resolution: int = field(default=16, metadata={"gt": 0})
    seed: int = 0
    model: ToyModelConfig = field(default_factory=ToyModelConfig)
    base: ToyBaseConfig = field(default_factory=ToyBaseConfig)
    pairs: ToyPairsConfig = field(default_factory=ToyPairsConfig)
    mixed: ToyMixedConfig = field(default_factory=ToyMixedConfig)
    flow: ToyFlowConfig = field(default_factory=ToyFlowConfig)
