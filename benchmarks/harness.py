"""The benchmark harness: arms (named override sets) run through the product's own functions.

A benchmark is a table of arms, ``name → (method, config overrides)``, each trained and evaluated in a
throw-away workspace by the functions the pipeline's stages call: the world's pair maker and
``prepare_pairs`` (stages ``world_pairs``, ``prepare``), :func:`inpo.train.run.training_run` +
:func:`inpo.train.loop.train` (stage ``train``), :func:`inpo.sampling.sample_images` (stage
``generate``), the world's exact oracle and guard metrics (stage ``score``) and
:func:`evaluation.compare.paired_comparison` (the report's win-rates). Measurements come through the
training loop's observer interface (:class:`ForwardCounter`) and its validation callback; nothing in
the product is patched.

    cfg = make_config(work, overrides)                 # params.yaml + the arm's overrides
    items = eval_items(cfg, n_prompts, n_seeds, steps) # held-out prompts × fixed seeds
    record = train_and_evaluate(work, name, method, overrides, seed, eval_steps, items, counter)

Scripts (``python -m benchmarks.<name>``): ``toy_alignment`` (the core table), ``claims_ablations``, ``toy_ablations``,
``toy_inpo_probe``, ``train_cost``.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from evaluation.compare import paired_comparison  # noqa: E402
from inpo.train.run import TrainObserver  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MANIFESTS = REPO / "benchmarks" / "manifests"
PROTOCOL_WORLDS = ("toy-mixed", "toy-flow")  # built under issue 10's protocol: InPO only after validation
INV = "method.inpo.inversion"

Arms = dict[str, tuple[str, list[str]]]
"""A benchmark's arms: name → (training method, config overrides on top of the benchmark's own)."""


# ------------------------------------------------------------------------------------- workspace


def make_config(
    work: Path, overrides: Sequence[str] = (), world: str = "toy", data: str | None = None
) -> Any:
    """The project's params.yaml for ``world`` with outputs/checkpoints under ``work``, absolute
    model paths, and the world's pairs in ``data/<data or world>/world-pairs`` (shared by benchmark
    runs; ``model.pretrained`` stays the world's own base unless an override sets it)."""
    from inpo.config import config_from_dict

    data_dir = REPO / "data" / (data or world)
    assets = REPO / "inpo" / "assets"
    base = [
        f"world={world}",
        f"paths.outputs={work / 'outputs'}",
        f"paths.checkpoints={work / 'checkpoints'}",
        f"paths.data={data_dir}",
        f"data.source={data_dir / 'world-pairs'}",
        f"toy.base.out={assets / 'toy-base'}",
        f"toy.mixed.base_out={assets / 'toy-weak-base'}",
        "train.checkpoint_every=100000",  # only the final save: checkpoints are not what is measured
        "train.keep_checkpoints=1",
    ]
    return config_from_dict(copy.deepcopy(params_snapshot()), [*base, *overrides])


@functools.cache
def params_snapshot() -> dict[str, Any]:
    """params.yaml as read once per process: edits made while a benchmark runs do not reach it."""
    from inpo.config import DEFAULT_PARAMS, read_yaml

    return read_yaml(DEFAULT_PARAMS)


def ensure_pairs(cfg: Any) -> Path:
    """The world's pairs (``inpo world pairs``, if the shard is missing) then ``inpo prepare`` into the
    private outputs: the functions the ``world_pairs`` and ``prepare`` stages call."""
    from inpo import layout
    from inpo.data.filtering import prepare_pairs
    from inpo.worlds import get_world

    key_file = layout.world_pairs_dir(cfg) / "harness_key.json"
    key = pairs_key(cfg)
    if not key_file.is_file() or json.loads(key_file.read_text()) != key:
        get_world(cfg).make_pairs(cfg, progress=False)
        write_atomic(key_file, json.dumps(key, indent=1))
    index = layout.pair_index(cfg)
    if not index.exists():
        prepare_pairs(cfg.data, index.parent, progress=False)
    return index


def pairs_key(cfg: Any) -> dict[str, Any]:
    """What the world's pairs depend on (the ``world_pairs`` stage's params and its bases' content)."""
    import hashlib
    from dataclasses import asdict

    def folder_hash(folder: Path) -> str:
        h = hashlib.sha256()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
        return h.hexdigest()

    bases = {"toy.base.out": Path(cfg.toy.base.out), "toy.mixed.base_out": Path(cfg.toy.mixed.base_out)}
    if cfg.world == "toy-flow":  # its pairs come from its own base only
        bases = {"toy.flow.base_out": Path(cfg.toy.flow.base_out)}
    return {  # no paths: the key of one world is the same on every machine
        "world": cfg.world,
        "seed": cfg.toy.seed,
        "resolution": cfg.toy.resolution,
        "pairs": asdict(cfg.toy.pairs),
        "mixed": {k: v for k, v in asdict(cfg.toy.mixed).items() if k != "base_out"},
        **({"flow_shift": cfg.toy.flow.shift} if cfg.world == "toy-flow" else {}),
        "bases": {key: folder_hash(folder) for key, folder in bases.items() if folder.is_dir()},
    }


def manifest_hash(manifest: dict[str, Any]) -> str:
    """sha256 of a manifest's canonical JSON without its own ``sha256`` field."""
    import hashlib

    body = {k: v for k, v in manifest.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def read_manifest(path: Path) -> dict[str, Any]:
    """A world's validity manifest (:mod:`benchmarks.world_validity`), its hash checked."""
    manifest = json.loads(path.read_text())
    if manifest.get("sha256") != manifest_hash(manifest):
        raise SystemExit(f"{path}: its sha256 does not match its content (edited by hand?)")
    return manifest


def require_validated_world(cfg: Any, manifests: Path = MANIFESTS) -> None:
    """Refuse InPO in a protocol world unless its manifest validated this very world (same key)."""
    if cfg.world not in PROTOCOL_WORLDS:
        return
    path = manifests / f"{cfg.world}.json"
    if not path.is_file():
        raise SystemExit(
            f"world {cfg.world!r} has no validity manifest ({path}): run "
            f"`python -m benchmarks.world_validity --world {cfg.world}` before any InPO arm"
        )
    validated = read_manifest(path).get("validated")
    if validated is None:
        raise SystemExit(
            f"world {cfg.world!r} failed its validity check ({path}): change the world, not the methods"
        )
    if validated["world_key"] != pairs_key(cfg):
        raise SystemExit(
            f"world {cfg.world!r} as configured differs from the version its manifest validated ({path}, "
            f"version {validated['version']}): a changed world needs its own check"
        )


class ForwardCounter(TrainObserver):
    """UNet forward rows by grad mode, counted while ``active`` by a forward pre-hook that this
    training-loop observer puts on the policy's and the reference's UNet."""

    def __init__(self) -> None:
        self.active = True
        self.rows = {"grad": 0, "no_grad": 0}

    def on_start(self, run: Any, unets: list[torch.nn.Module]) -> None:
        for unet in unets:
            unet.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        if not self.active:
            return
        x = args[0] if args else kwargs["sample"]
        self.rows["grad" if torch.is_grad_enabled() else "no_grad"] += int(x.shape[0])


# ------------------------------------------------------------------------------------ evaluation


@dataclass(frozen=True)
class EvalItems:
    prompts: list[str]
    seeds: list[int]
    sample_steps: int
    guidance: float

    @property
    def ids(self) -> np.ndarray:
        return np.arange(len(self.prompts))


def eval_items(cfg: Any, n_prompts: int | None, n_seeds: int, sample_steps: int) -> EvalItems:
    """Held-out prompts × seeds 0..n_seeds-1 (prompt-major), the same for every model."""
    from inpo.toyworld.prompts import heldout_prompts

    prompts = heldout_prompts(cfg)[: n_prompts or None]
    return EvalItems(
        [p for p in prompts for _ in range(n_seeds)],
        [s for _ in prompts for s in range(n_seeds)],
        sample_steps,
        cfg.sample.guidance,
    )


def evaluate(components: Any, unet: torch.nn.Module, items: EvalItems, resolution: int) -> dict[str, Any]:
    """Sample every item → ``images`` uint8 [N, 3, H, W], ``scores`` [N], ``accuracy``, ``diversity``."""
    from inpo.sampling import sample_images, to_uint8
    from inpo.toyworld.metrics import diversity, prompt_following
    from inpo.toyworld.oracle import OracleScorer
    from inpo.toyworld.sampling import toy_sampler

    images = sample_images(
        components,
        unet,
        items.prompts,
        items.seeds,
        steps=items.sample_steps,
        guidance=items.guidance,
        scheduler=toy_sampler(components),  # DDIM; flow Euler for world toy-flow's base
        resolution=resolution,
    )
    u8 = to_uint8(images)
    x = u8.float() / 255.0  # what a saved PNG scores
    scores = OracleScorer().score(x, items.prompts).numpy().astype(np.float64)
    follow = prompt_following(x, items.prompts)
    return {
        "images": u8,
        "scores": scores,
        "oracle_mean": float(scores.mean()),
        "accuracy": follow["accuracy"],
        "diversity": diversity(x, items.prompts),
    }


def compare(a: np.ndarray, b: np.ndarray, groups: np.ndarray | None, samples: int = 2000) -> dict[str, Any]:
    """Win-rate and mean gain of ``a`` over ``b`` (paired items) with 95% bootstrap intervals."""
    return paired_comparison(a, b, samples, 0.95, 0, groups)


# -------------------------------------------------------------------------------------- training


@dataclass
class RunRecord:
    """One training run evaluated along the way."""

    name: str
    seed: int
    evals: dict[int, dict[str, Any]] = field(default_factory=dict)  # step → evaluate() + cost
    losses: list[float] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    wall_seconds: float = 0.0


def train_and_evaluate(
    work: Path,
    name: str,
    method: str,
    overrides: Sequence[str],
    seed: int,
    eval_steps: Sequence[int],
    items: EvalItems,
    counter: ForwardCounter,
    world: str = "toy",
    data: str | None = None,
) -> RunRecord:
    """One run of ``method`` in ``world`` from its base for ``max(eval_steps)`` steps, evaluated at
    ``eval_steps``. InPO arms need a validated world (:func:`require_validated_world`)."""
    from inpo.train.loop import train
    from inpo.train.run import training_run

    steps = sorted(eval_steps)
    every = math.gcd(*steps)
    cfg = make_config(work, [*overrides, f"train.seed={seed}", f"train.validate_every={every}"], world, data)
    if method == "inpo":
        require_validated_world(cfg)
    run_dir = work / "runs" / f"{name}-s{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # fresh: the loop would resume a previous checkpoint
    record = RunRecord(name, seed)

    def validate(step: int, unet: torch.nn.Module, components: Any, out_dir: Path) -> dict[str, float]:
        if step not in steps:
            return {}
        counter.active = False
        try:
            result = evaluate(components, unet, items, cfg.data.resolution)
        finally:
            counter.active = True
        result["rows_grad"] = counter.rows["grad"]
        result["rows_no_grad"] = counter.rows["no_grad"]
        record.evals[step] = result
        return {"oracle_mean": result["oracle_mean"], "accuracy": result["accuracy"]}

    spec = training_run(
        cfg,
        method,
        index_path=ensure_pairs(cfg),
        out_dir=run_dir / "out",
        ckpt_root=run_dir / "ckpt",
        max_steps=steps[-1],
        validate=validate,
    )
    counter.rows = {"grad": 0, "no_grad": 0}
    started = time.perf_counter()
    train(spec, observer=counter)
    record.wall_seconds = time.perf_counter() - started
    lines = (spec.out_dir / "metrics.jsonl").read_text().splitlines()
    record.metrics = [json.loads(line) for line in lines if line]
    record.losses = [float(m["loss"]) for m in record.metrics]
    seconds = np.cumsum([m["seconds"] for m in record.metrics])
    for step, result in record.evals.items():
        result["seconds"] = float(seconds[step - 1])
        result["pairs"] = step * cfg.train.pairs_per_device * cfg.train.grad_accum
        result["inversion_calls"] = float(sum(m.get("inversion_calls", 0.0) for m in record.metrics[:step]))
    shutil.rmtree(run_dir / "ckpt", ignore_errors=True)
    return record


# ---------------------------------------------------------------------------------------- output


def fmt_ci(est: float, low: float, high: float, digits: int = 3) -> str:
    return f"{est:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
