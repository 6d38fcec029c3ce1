"""The typed sections of ``params.yaml``. Every value has one home here; defaults are the toy world's.

Ranges are declared as field metadata (``gt``/``ge``/``lt``/``le``) and checked by
:mod:`inpo.config.validate`; cross-field rules live in ``__post_init__``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .toy_sections import (  # noqa: F401  (re-exported: every section is importable from here)
    ToyBaseConfig,
    ToyConfig,
    ToyFlowConfig,
    ToyMixedConfig,
    ToyModelConfig,
    ToyPairsConfig,
)
from .validate import ConfigError


@dataclass(frozen=True)
class PathsConfig:
    """Where stages read and write. Relative paths are relative to the project root."""

    data: str = "data"  # raw inputs (toy pairs, user shards)
    outputs: str = "outputs"  # stage outputs tracked by DVC
    checkpoints: str = "checkpoints"  # resumable training state, outside DVC's cache


@dataclass(frozen=True)
class DataConfig:
    """Pick-a-Pic v2 shaped pair data and its transforms (spec §4)."""

    source: str = "data/world-pairs"  # parquet file/folder, `datasets.save_to_disk` folder, or hub id
    format: Literal["auto", "parquet", "disk", "hub"] = "auto"
    split: str = "train"
    drop_ties: bool = True
    dedup: bool = False
    max_caption_chars: int | None = field(default=None, metadata={"gt": 0})
    max_pairs: int | None = field(default=None, metadata={"gt": 0})
    resolution: int = field(default=16, metadata={"gt": 0})
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"  # shorter-side resize (PIL, antialiased)
    crop: Literal["center", "random"] = "center"
    random_flip: bool = True  # independent horizontal flips of winner and loser
    caption_dropout: float = field(default=0.2, metadata={"ge": 0.0, "le": 1.0})
    num_workers: int = field(default=0, metadata={"ge": 0})
    prepare_workers: int = field(default=0, metadata={"ge": 0})  # `inpo prepare` shard-scanning processes


@dataclass(frozen=True)
class LoraConfig:
    enabled: bool = False
    rank: int = field(default=8, metadata={"gt": 0})
    alpha: float = field(default=8.0, metadata={"gt": 0})
    dropout: float = field(default=0.0, metadata={"ge": 0.0, "lt": 1.0})
    target_modules: list[str] = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])


@dataclass(frozen=True)
class ModelConfig:
    """The base model: a hub id or local diffusers folder, and how the reference is formed."""

    family: Literal["sd15", "sd2", "sdxl", "sd3", "toy"] = "toy"
    pretrained: str | None = None  # null: the world's own base (Config.WORLD_BASES), e.g. toy.base.out
    revision: str | None = None
    variant: str | None = None
    unet: str | None = None  # a UNet folder that replaces the base's (e.g. an SFT UNet)
    vae: str | None = None  # e.g. an fp16-fix VAE for SDXL
    unet_lora: str | None = None  # a LoRA adapter folder (e.g. an SFT LoRA) merged into the UNet at load
    upcast_vae: bool = True
    sdxl_micro_conditioning: Literal["constant", "real"] = "constant"
    # SD3: load T5 (text_encoder_3); or "zeros" in its place (diffusers' pipeline without T5, same
    # sequence length 77); or "drop" its tokens altogether (CLIP tokens only). Saves ~9 GiB at bf16.
    sd3_t5: Literal["load", "zeros", "drop"] = "load"
    sd3_max_sequence_length: int = field(default=256, metadata={"gt": 0, "le": 512})  # T5 tokens
    lora: LoraConfig = field(default_factory=LoraConfig)

    @property
    def base(self) -> str:
        """``pretrained`` once the config has resolved it (``null`` → the world's own base)."""
        if self.pretrained is None:
            raise ConfigError(
                "model.pretrained: null means the world's own base, and this world has none "
                "(toy and toy-mixed have one); set a hub id or a local diffusers folder"
            )
        return self.pretrained


@dataclass(frozen=True)
class InversionConfig:
    """DDIM inversion of InPO (spec §2, §5)."""

    mode: Literal["faithful", "corrected"] = "corrected"
    steps: int = field(default=10, metadata={"gt": 0, "le": 1000})
    eta: float = field(default=0.1, metadata={"ge": 0.0})
    model: Literal["policy", "reference"] = "policy"
    guidance: float = field(default=1.0, metadata={"ge": 0.0})
    cache: bool = False  # reuse the frozen reference's grid latents (needs model=reference, eta=0)
    cache_on_disk: bool = False  # also keep the cache as safetensors under paths.checkpoints/cache
    # flow-matching models: the target divides by sigma_t, so levels below this are raised to it
    sigma_min: float = field(default=0.02, metadata={"gt": 0.0, "lt": 1.0})

    def __post_init__(self) -> None:
        if self.cache and (self.model != "reference" or self.eta != 0.0):
            raise ConfigError(
                "inversion.cache: the inversion cache is valid only when the frozen reference inverts "
                f"with eta 0; got model={self.model!r}, eta={self.eta}"
            )
        if self.cache_on_disk and not self.cache:
            raise ConfigError("inversion.cache_on_disk: needs inversion.cache: true")


@dataclass(frozen=True)
class InpoMethodConfig:
    beta: float = field(default=5000.0, metadata={"gt": 0})
    inversion: InversionConfig = field(default_factory=InversionConfig)


@dataclass(frozen=True)
class DpoMethodConfig:
    beta: float = field(default=5000.0, metadata={"gt": 0})


@dataclass(frozen=True)
class SftMethodConfig:
    """SFT baseline: noise-prediction MSE on winners only."""


@dataclass(frozen=True)
class KtoMethodConfig:
    beta: float = field(default=5000.0, metadata={"gt": 0})
    lambda_desirable: float = field(default=1.0, metadata={"ge": 0})
    lambda_undesirable: float = field(default=1.0, metadata={"ge": 0})


@dataclass(frozen=True)
class SmpoMethodConfig:
    """SmPO (Lu et al., ICML 2025): InPO with smoothed labels p (the pairs' ``soft_label_0``, written by
    ``inpo relabel``). ``inversion.mode`` picks the whole method: ``faithful`` is the release (ReNoise
    inversion, the first pair's t and p, z scaled by 10·(2p−1)); ``corrected`` is the project's
    inversion with the per-pair soft-label loss (docs/method.md, SmPO)."""

    beta: float = field(default=5000.0, metadata={"gt": 0})  # faithful: the release's --beta_dpo
    inversion: InversionConfig = field(default_factory=lambda: InversionConfig(eta=0.0))


@dataclass(frozen=True)
class MethodsConfig:
    """One section per method, so a setting such as ``beta`` has one meaning per method."""

    inpo: InpoMethodConfig = field(default_factory=InpoMethodConfig)
    dpo: DpoMethodConfig = field(default_factory=DpoMethodConfig)
    sft: SftMethodConfig = field(default_factory=SftMethodConfig)
    kto: KtoMethodConfig = field(default_factory=KtoMethodConfig)
    smpo: SmpoMethodConfig = field(default_factory=SmpoMethodConfig)


@dataclass(frozen=True)
class OnlineConfig:
    """Online rounds (``inpo online``, docs/online_rounds.md): sample pairs from the current policy,
    label them with the world's labeller (toy worlds: the oracle; given data: the ``relabel`` judges),
    train a round from that policy (also the round's reference), evaluate with the labeller and a held-out guard scorer; stop after ``rounds`` or
    when the guard's win-rate lower bound has not risen for ``patience`` rounds."""

    rounds: int = field(default=3, metadata={"gt": 0})
    method: str = "inpo"
    steps_per_round: int | None = field(default=None, metadata={"gt": 0})  # null: train.max_steps // rounds
    pairs_per_prompt: int | None = field(default=None, metadata={"gt": 0})  # null: the world's offline // rounds
    prompts: str | None = None  # worlds of given data: the prompts a round samples (a prompt set or .txt)
    guard_scorer: str = "oracle_strict"  # a scorer the labeller is not (reward-hacking check)
    patience: int = field(default=2, metadata={"gt": 0})


@dataclass(frozen=True)
class RelabelConfig:
    """AI feedback (``inpo relabel``): the scorers that judge each pair, and its smoothed label.

    With scores s_k and weights w_k: d = Σ_k w_k (s_k(img 0) − s_k(img 1)) / τ_k, label_0 = 1, 0 or
    ½ by the sign of d (|d| ≤ tie_margin: ½), soft_label_0 = sigmoid(d)."""

    scorers: dict[str, float] = field(default_factory=dict)  # name → weight; {}: the first of eval.scorers
    # τ per scorer, in the scorer's own units (the difference that makes p = sigmoid(1) = 0.73).
    # pickscore: the release's min-max range of cos, 0.16658, × exp(logit_scale) = 100
    tau: dict[str, float] = field(default_factory=lambda: {"pickscore": 16.658, "oracle": 0.1})
    tie_margin: float = field(default=0.0, metadata={"ge": 0})

    def __post_init__(self) -> None:
        for name, value in {**self.tau, **self.scorers}.items():
            if not value > 0:
                raise ConfigError(f"relabel: {name}: {value} is out of range; weights and tau must be > 0")


@dataclass(frozen=True)
class EmaConfig:
    enabled: bool = False
    decay: float = field(default=0.999, metadata={"gt": 0.0, "lt": 1.0})


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation loop shared by every method (spec §4 hyper-parameters at full scale)."""

    seed: int = 0
    pairs_per_device: int = field(default=16, metadata={"gt": 0})
    grad_accum: int = field(default=1, metadata={"gt": 0})
    max_steps: int = field(default=100, metadata={"gt": 0})
    learning_rate: float = field(default=3e-6, metadata={"gt": 0})
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"  # diffusers' get_scheduler
    warmup_steps: int = field(default=0, metadata={"ge": 0})
    optimizer: Literal["adamw", "adafactor", "adamw8bit"] = "adamw"  # adamw8bit: bitsandbytes, inpo[gpu]
    weight_decay: float = field(default=1e-2, metadata={"ge": 0})
    adam_beta1: float = field(default=0.9, metadata={"ge": 0, "lt": 1})
    adam_beta2: float = field(default=0.999, metadata={"ge": 0, "lt": 1})
    adam_eps: float = field(default=1e-8, metadata={"gt": 0})
    max_grad_norm: float = field(default=1.0, metadata={"gt": 0})
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_checkpointing: bool = False
    timestep_min: int = field(default=0, metadata={"ge": 0, "le": 999})
    timestep_max: int = field(default=999, metadata={"ge": 0, "le": 999})
    # uniform | logit_normal (SD3's: u = sigmoid(N(logit_mean, logit_std)) is the noise level's quantile)
    timestep_sampling: Literal["uniform", "logit_normal"] = "uniform"
    logit_mean: float = 0.0
    logit_std: float = field(default=1.0, metadata={"gt": 0.0})
    ema: EmaConfig = field(default_factory=EmaConfig)
    cache_embeddings: bool = False  # VAE latents and text embeddings computed once per pair set
    checkpoint_every: int = field(default=50, metadata={"gt": 0})
    keep_checkpoints: int = field(default=2, metadata={"gt": 0})
    validate_every: int = field(default=50, metadata={"gt": 0})
    max_nonfinite_in_row: int = field(default=5, metadata={"gt": 0})

    def __post_init__(self) -> None:
        if self.timestep_min > self.timestep_max:
            raise ConfigError(
                f"train.timestep_min ({self.timestep_min}) must not exceed train.timestep_max ({self.timestep_max})"
            )


@dataclass(frozen=True)
class SftStageConfig:
    """Optional supervised fine-tuning of the reference on winners before preference training."""

    enabled: bool = False
    max_steps: int = field(default=100, metadata={"gt": 0})
    learning_rate: float = field(default=1e-5, metadata={"gt": 0})


@dataclass(frozen=True)
class SampleConfig:
    """Image generation for evaluation (spec: evaluation protocol)."""

    steps: int = field(default=50, metadata={"gt": 0})
    guidance: float = field(default=7.5, metadata={"ge": 0})
    scheduler: Literal["ddim", "euler", "dpm", "flow_euler"] = "ddim"  # flow_euler: flow-matching models
    height: int | None = field(default=None, metadata={"gt": 0})
    width: int | None = field(default=None, metadata={"gt": 0})
    batch_size: int = field(default=8, metadata={"gt": 0})
    seed: int = 0
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"  # UNet/text encoders (VAE: model.upcast_vae)
    # more models to generate beside "base" and the trained methods: name → a UNet folder (or a pipeline
    # folder with unet/), a LoRA adapter folder, or a hub id of a UNet repo (e.g. a published checkpoint)
    extra_models: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AestheticScorerConfig:
    """LAION aesthetic: CLIP ViT-L/14 image tower + the MLP head (spec: evaluation)."""

    clip_model: str = "openai/clip-vit-large-patch14"  # hub id or local CLIPModel folder
    processor: str | None = None  # image-processor folder; None: the clip_model folder
    head: str = "trl-lib/ddpo-aesthetic-predictor/aesthetic-model.pth"  # local file or hub org/repo/file


@dataclass(frozen=True)
class PickScoreScorerConfig:
    model: str = "yuvalkirstain/PickScore_v1"  # hub id or local CLIPModel folder
    processor: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"  # image processor + tokenizer folder
    max_length: int = field(default=77, metadata={"gt": 0})


@dataclass(frozen=True)
class HpsScorerConfig:
    version: Literal["v2.0", "v2.1"] = "v2.1"  # v2.0 and v2.1 scores are not comparable
    architecture: str = "ViT-H-14"  # open_clip model name or path to a JSON model config
    checkpoint: str | None = None  # local file or hub org/repo/file; None: xswu/HPSv2 file of `version`


@dataclass(frozen=True)
class ClipScorerConfig:
    architecture: str = "ViT-H-14"  # open_clip model name or path to a JSON model config
    pretrained: str = "laion2B-s32B-b79K"  # open_clip tag, local file, or hub org/repo/file


@dataclass(frozen=True)
class EvalConfig:
    prompt_sets: list[str] = field(default_factory=lambda: ["toy"])  # parti | hpdv2 | toy | a .txt file
    hpdv2_dir: str | None = None  # folder with anime.json, concept-art.json, paintings.json, photo.json
    seeds_per_prompt: dict[str, int] = field(default_factory=lambda: {"toy": 16})  # missing sets: 1
    scorers: list[str] = field(default_factory=lambda: ["oracle"])
    baseline: str = "base"
    bootstrap_samples: int = field(default=2000, metadata={"gt": 0})
    confidence: float = field(default=0.95, metadata={"gt": 0, "lt": 1})
    bootstrap_unit: Literal["prompt", "item"] = "prompt"  # resample prompts (all their seeds) or items
    bootstrap_seed: int = 0
    score_batch_size: int = field(default=16, metadata={"gt": 0})
    score_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    aesthetic: AestheticScorerConfig = field(default_factory=AestheticScorerConfig)
    pickscore: PickScoreScorerConfig = field(default_factory=PickScoreScorerConfig)
    hps: HpsScorerConfig = field(default_factory=HpsScorerConfig)
    clip: ClipScorerConfig = field(default_factory=ClipScorerConfig)

    def __post_init__(self) -> None:
        for name, count in self.seeds_per_prompt.items():
            if count < 1:
                raise ConfigError(f"eval.seeds_per_prompt.{name}: {count} is out of range; expected >= 1")


@dataclass(frozen=True)
class RuntimeConfig:
    """How a stage uses the machine it runs on."""

    # torch CPU threads per process (null: torch's default). Tiny toy-world models run fastest with 1
    # thread on a busy 2-core machine; on GPU machines this only affects host-side work.
    cpu_threads: int | None = field(default=1, metadata={"gt": 0})
    # training and generation processes: > 1 relaunches `inpo train/sft/generate` under accelerate
    # (e.g. 8 on an 8-GPU machine); multi-node, DeepSpeed, FSDP: a file from `accelerate config`
    num_processes: int = field(default=1, metadata={"gt": 0})
    accelerate_config: str | None = None


@dataclass(frozen=True)
class TrackingConfig:
    enabled: bool = True
    uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlruns.db (project root)
    artifact_location: str = "mlartifacts"
    experiment: str | None = None  # None: $MLFLOW_EXPERIMENT_NAME, else one per world/model
    live: bool = True  # flow runs: each train stage logs its curves to its model run while it trains
