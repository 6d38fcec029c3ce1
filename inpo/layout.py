"""Where each stage reads and writes, derived from ``paths:`` (one place, so DVC's ``dvc.yaml``,
the stages and the tests agree)."""

from __future__ import annotations

from pathlib import Path

from .config import Config


def outputs(cfg: Config) -> Path:
    return Path(cfg.paths.outputs)


def pair_index(cfg: Config) -> Path:
    return outputs(cfg) / "prepare" / "pairs.parquet"


def prepare_summary(cfg: Config) -> Path:
    return outputs(cfg) / "prepare" / "summary.json"


# file names inside a training run's folder (the loop writes them; the stage table and tracking read them)
WEIGHTS = "unet"
SUMMARY = "summary.json"
STEP_LOG = "metrics.jsonl"
VALIDATION_LOG = "validation.jsonl"
VALIDATION_GRIDS = "validation"
MANIFEST_FILE = "items.parquet"  # one row per generated image, in the generate folder


def sft_dir(cfg: Config) -> Path:
    return outputs(cfg) / "sft"


def sft_summary(cfg: Config) -> Path:
    return sft_dir(cfg) / SUMMARY


def sft_weights(cfg: Config) -> Path:
    return sft_dir(cfg) / WEIGHTS


def sft_step_log(cfg: Config) -> Path:
    return sft_dir(cfg) / STEP_LOG


def train_root(cfg: Config) -> Path:
    """Every method's training folder lives under this one (what ``generate`` depends on)."""
    return outputs(cfg) / "train"


def train_dir(cfg: Config, method: str) -> Path:
    return train_root(cfg) / method


def train_weights(cfg: Config, method: str) -> Path:
    return train_dir(cfg, method) / WEIGHTS


def train_summary(cfg: Config, method: str) -> Path:
    return train_dir(cfg, method) / SUMMARY


def train_step_log(cfg: Config, method: str) -> Path:
    return train_dir(cfg, method) / STEP_LOG


def validation_log(cfg: Config, method: str) -> Path:
    return train_dir(cfg, method) / VALIDATION_LOG


def validation_grids(cfg: Config, method: str) -> Path:
    return train_dir(cfg, method) / VALIDATION_GRIDS


HASH_CACHE_NAME = "sha256.json"  # inpo.identity.HashCache's file in cache_root


def cache_root(cfg: Config) -> Path:
    """``<paths.checkpoints>/cache``: regenerable caches shared by stages and resumed runs."""
    return Path(cfg.paths.checkpoints) / "cache"


def hash_cache_file(cfg: Config) -> Path:
    """The content hashes of local files and folders, keyed by (path, size, mtime)."""
    return cache_root(cfg) / HASH_CACHE_NAME


def checkpoint_root(cfg: Config, stage: str) -> Path:
    """``<paths.checkpoints>/<stage>``: one folder per run identity inside (:mod:`inpo.train.identity`)."""
    return Path(cfg.paths.checkpoints) / stage


def world_pairs_dir(cfg: Config) -> Path:
    """Where a world that makes its pairs writes them (``inpo world pairs``): one folder for every
    world, so ``data.source`` needs no change when ``world`` does (DVC reruns the stage on the
    ``world`` param; its ``metadata.json`` names the world, and ``inpo prepare`` refuses another's)."""
    return Path(cfg.paths.data) / "world-pairs"


def training_curve(cfg: Config, method: str) -> Path:
    """Per-step training metrics as TSV (what ``dvc plots`` reads; ``metrics.jsonl`` is the loop's log)."""
    return train_dir(cfg, method) / "metrics.tsv"


def training_curve_png(cfg: Config, method: str) -> Path:
    """The loss curve as a picture (readable offline; ``dvc plots show`` embeds it as an image)."""
    return train_dir(cfg, method) / "loss.png"


def generate_dir(cfg: Config) -> Path:
    return outputs(cfg) / "generate"


def score_dir(cfg: Config) -> Path:
    return outputs(cfg) / "score"


def scores_file(cfg: Config) -> Path:
    return score_dir(cfg) / "scores.parquet"


def score_metrics(cfg: Config) -> Path:
    return score_dir(cfg) / "metrics.json"


def report_dir(cfg: Config) -> Path:
    return outputs(cfg) / "report"


def winrates_file(cfg: Config) -> Path:
    return report_dir(cfg) / "winrates.json"


def generate_manifest(cfg: Config) -> Path:
    """One row per generated image (model, prompt_set, prompt_id, seed, prompt, category, path)."""
    return generate_dir(cfg) / MANIFEST_FILE


def scorer_info_file(cfg: Config) -> Path:
    """What each scorer loaded (``Scorer.info()``), beside the score table."""
    return score_dir(cfg) / "scorers.json"


def report_file(cfg: Config, suffix: str = "md") -> Path:
    """``report.md`` or ``report.html``."""
    return report_dir(cfg) / f"report.{suffix}"


def report_charts_dir(cfg: Config) -> Path:
    return report_dir(cfg) / "charts"


def report_cards_dir(cfg: Config) -> Path:
    """``<method>.md``: each trained model's card with its win-rates (:mod:`inpo.model_card`)."""
    return report_dir(cfg) / "cards"


def relabel_dir(cfg: Config, scorer: str) -> Path:
    """A pair set relabelled by ``scorer`` (Pick-a-Pic-shaped parquet; ``data.source`` can point here)."""
    return outputs(cfg) / "relabel" / scorer
