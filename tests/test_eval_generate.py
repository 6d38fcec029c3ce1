"""`inpo generate`: fixed seeds give bit-identical images, a killed run resumes without redoing
finished images, models differ only by their UNet (full or LoRA), items are split across processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from evaluation.generate import (
    GenerationError,
    generate_images,
    image_path,
    model_specs,
    read_manifest,
    shard_items,
)
from evaluation.prompts import eval_items
from inpo.config import DEFAULT_PARAMS, Config, load_config
from inpo.toyworld.world import VOCABULARY

PROMPTS = [
    "a red circle on a blue background",
    "a green square on a white background",
    "a black cross on a yellow background",
]
WORDS = list(VOCABULARY)  # the toy world's 13 words: a tiny word-level tokenizer
SEEDS_PER_PROMPT = 3  # 3 prompts x 3 seeds = 9 items per model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny pixel-space base, a second UNet (the 'dpo' method's full weights) and a prompt file."""
    from inpo.testing.tiny_models import write_tiny_pixel

    root = tmp_path_factory.mktemp("models")
    write_tiny_pixel(root / "base", seed=0, words=WORDS)
    write_tiny_pixel(root / "other", seed=1, words=WORDS)
    (root / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    return root


def make_cfg(models: Path, outputs: Path, *extra: str) -> Config:
    train_unet = outputs / "train" / "dpo" / "unet"
    if not train_unet.exists():
        shutil.copytree(models / "other" / "unet", train_unet)
    return load_config(
        DEFAULT_PARAMS,
        [
            f"model.pretrained={models / 'base'}",
            f"paths.outputs={outputs}",
            f"paths.checkpoints={outputs / 'checkpoints'}",
            "methods=[dpo]",
            f"eval.prompt_sets=[{models / 'prompts.txt'}]",
            f"eval.seeds_per_prompt={{prompts: {SEEDS_PER_PROMPT}}}",
            "sample.steps=3",
            "sample.batch_size=4",
            *extra,
        ],
    )


def run_generate(cfg: Config, **kwargs: object) -> object:
    items = eval_items(cfg.eval, base_seed=cfg.sample.seed)
    return generate_images(
        cfg, model_specs(cfg), items, Path(cfg.paths.outputs) / "generate", progress=False, **kwargs
    )


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_same_seed_gives_bit_identical_images_and_models_differ_only_by_unet(
    models: Path, tmp_path: Path
) -> None:
    cfg_a, cfg_b = make_cfg(models, tmp_path / "a"), make_cfg(models, tmp_path / "b")
    table_a, table_b = run_generate(cfg_a), run_generate(cfg_b)
    assert len(table_a) == len(table_b) == 2 * len(PROMPTS) * SEEDS_PER_PROMPT  # base + dpo, 9 items each
    assert list(table_a.columns) == ["model", "prompt_set", "prompt_id", "seed", "prompt", "category", "path"]
    for rel in table_a["path"]:
        assert np.array_equal(pixels(tmp_path / "a/generate" / rel), pixels(tmp_path / "b/generate" / rel)), (
            rel
        )
    # one seed per item, base_seed + prompt_index * 3 + j: prompt 1 has seeds 3, 4, 5
    assert sorted(table_a[table_a["prompt_id"] == "00001"]["seed"].unique().tolist()) == [3, 4, 5]
    base = {
        r.path.split("/", 1)[1]: pixels(tmp_path / "a/generate" / r.path)
        for r in table_a.itertuples()
        if r.model == "base"
    }
    dpo = {
        r.path.split("/", 1)[1]: pixels(tmp_path / "a/generate" / r.path)
        for r in table_a.itertuples()
        if r.model == "dpo"
    }
    assert base.keys() == dpo.keys()
    assert all(not np.array_equal(base[k], dpo[k]) for k in base)  # another UNet, other images
    assert not np.array_equal(base["prompts/00000_0.png"], base["prompts/00000_1.png"])  # seeds differ


def test_killed_run_resumes_without_regenerating_or_partial_files(models: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = make_cfg(models, out)
    kill_after = 5
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import torch
        torch.set_num_threads(1)
        from test_eval_generate import make_cfg, run_generate
        from pathlib import Path
        written = []
        def on_image(path):
            written.append(path)
            if len(written) == {kill_after}:
                os.kill(os.getpid(), signal.SIGKILL)
        run_generate(make_cfg(Path({str(models)!r}), Path({str(out)!r})), on_image=on_image)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    root = out / "generate"
    done = sorted(root.rglob("*.png"))
    assert len(done) == kill_after  # killed right after the 5th image was in place
    assert not (root / "items.parquet").exists()  # no manifest from a killed run
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in done}
    stale = root / "base" / "prompts" / ".00002_8.png.tmp-99999"  # what a kill during a write leaves
    stale.write_bytes(b"\x89PNG half")

    rewritten: list[Path] = []
    table = run_generate(cfg, on_image=rewritten.append)
    assert len(rewritten) == 2 * len(PROMPTS) * SEEDS_PER_PROMPT - kill_after  # only the missing 13
    assert not set(rewritten) & set(before)
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in done} == before  # untouched
    assert not list(root.rglob("*.tmp-*"))
    assert len(table) == 18 and all((root / rel).is_file() for rel in table["path"])
    for rel in table["path"]:
        with Image.open(root / rel) as img:
            img.load()  # every file is a complete PNG
    # a complete rerun writes nothing
    again: list[Path] = []
    run_generate(cfg, on_image=again.append)
    assert again == []


def test_changed_settings_or_weights_regenerate_and_keep_the_old_images(
    models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = len(PROMPTS) * SEEDS_PER_PROMPT
    run_generate(make_cfg(models, tmp_path))
    superseded = tmp_path / "checkpoints" / "superseded" / "generate"
    drawn: list[Path] = []
    run_generate(make_cfg(models, tmp_path, "sample.steps=4"), on_image=drawn.append)
    assert len(drawn) == 2 * n  # every model again, none of the 3-step images mixed in
    assert "steps" in capsys.readouterr().out
    assert len(list(superseded.glob("base-*/prompts/*.png"))) == n  # nothing deleted

    # the method's weights change in place (a retrained `train@dpo`): only its images are redrawn
    dpo = tmp_path / "train" / "dpo" / "unet"
    before = {p: pixels(p) for p in (tmp_path / "generate" / "dpo").rglob("*.png")}
    shutil.rmtree(dpo)
    shutil.copytree(models / "base" / "unet", dpo)
    drawn.clear()
    table = run_generate(make_cfg(models, tmp_path, "sample.steps=4"), on_image=drawn.append)
    assert len(drawn) == n and all("/dpo/" in str(p) for p in drawn)
    assert "weights" in capsys.readouterr().out
    assert all(not np.array_equal(pixels(p), before[p]) for p in drawn)  # now the base's images
    base = {r: pixels(tmp_path / "generate" / r) for r in table["path"] if r.startswith("base/")}
    assert all(
        np.array_equal(pixels(tmp_path / "generate" / r.replace("base/", "dpo/", 1)), v)
        for r, v in base.items()
    )


def test_lora_method_is_merged_into_the_base(models: Path, tmp_path: Path) -> None:
    from diffusers import UNet2DConditionModel

    from inpo.config.sections import LoraConfig
    from inpo.models import add_lora_adapter, save_unet_weights

    unet = UNet2DConditionModel.from_pretrained(models / "base" / "unet")
    add_lora_adapter(unet, LoraConfig(rank=2, alpha=2.0))
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(0)) * 0.5)
    save_unet_weights(unet, tmp_path / "train" / "inpo" / "unet", lora=True)
    cfg = make_cfg(models, tmp_path, "methods=[inpo]", "model.lora.enabled=true")
    specs = model_specs(cfg)
    assert [s.name for s in specs] == ["base", "inpo"]
    assert specs[1].lora == str(tmp_path / "train" / "inpo" / "unet") and specs[1].model.unet is None
    table = run_generate(cfg)
    item = eval_items(cfg.eval)[0]
    root = tmp_path / "generate"
    assert len(table) == 18
    assert not np.array_equal(pixels(image_path(root, "base", item)), pixels(image_path(root, "inpo", item)))


def test_missing_method_weights_and_unknown_models_are_clear_errors(models: Path, tmp_path: Path) -> None:
    cfg = make_cfg(models, tmp_path, "methods=[dpo, kto]")
    with pytest.raises(GenerationError, match=r"train/kto/unet.*inpo train --method kto"):
        model_specs(cfg)
    cfg = make_cfg(models, tmp_path)
    assert [s.name for s in model_specs(cfg, ["dpo"])] == ["dpo"]
    with pytest.raises(GenerationError, match="unknown model"):
        model_specs(cfg, ["nope"])


def test_processes_split_items_and_the_main_process_writes_the_manifest(models: Path, tmp_path: Path) -> None:
    items = list(range(10))
    shards = [shard_items(items, i, 3) for i in range(3)]  # type: ignore[arg-type]
    assert shards == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    cfg = make_cfg(models, tmp_path)

    def state(index: int) -> SimpleNamespace:
        return SimpleNamespace(
            is_main_process=index == 0,
            process_index=index,
            num_processes=2,
            device="cpu",
            wait_for_everyone=lambda: None,
        )

    written: list[Path] = []
    assert run_generate(cfg, state=state(1), on_image=written.append) is None  # not the main process
    assert len(written) == 2 * 4  # items 1, 3, 5, 7 of 9, for both models
    table = run_generate(cfg, state=state(0))
    assert table is not None and len(table) == 18
    manifest, meta = read_manifest(tmp_path / "generate" / "items.parquet")
    assert len(manifest) == 18 and meta["models"] == ["base", "dpo"]
    assert meta["settings"]["dpo"]["model"]["unet"] == str(tmp_path / "train" / "dpo" / "unet")
    # a later run of one model keeps the others' complete images in the manifest
    items = eval_items(cfg.eval, base_seed=cfg.sample.seed)
    generate_images(cfg, model_specs(cfg, ["dpo"]), items, tmp_path / "generate", progress=False)
    manifest, meta = read_manifest(tmp_path / "generate" / "items.parquet")
    assert (
        len(manifest) == 18 and meta["models"] == ["base", "dpo"] and set(meta["settings"]) == {"base", "dpo"}
    )
