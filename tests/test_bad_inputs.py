"""The bad-input table (issue 11): every case is refused by the ``inpo`` command with exit status 2,
before any work (no file appears in the workspace), with a message naming the key or file.

Cases run in-process through :func:`inpo.cli.main` (the same code path as the console script, without
a Python start-up per case). ``CASES`` counts for the closing note: ``len(CASES)`` tried."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from inpo.cli import main
from inpo.config import to_dict
from inpo.data.fixtures import write_pickapic_shard
from tests.train_helpers import make_config, make_world

# (command, overrides, what the message must name); "{tmp}" is the workspace, "{bad}" a bad data folder
CONFIG_CASES = [
    ("train.learning_rate=.inf", "train.learning_rate"),
    ("train.learning_rate=1e400", "train.learning_rate"),
    ("train.learning_rate=.nan", "train.learning_rate"),
    ("method.inpo.inversion.guidance=.inf", "method.inpo.inversion.guidance"),
    ("method.inpo.beta=-1", "method.inpo.beta"),
    ("method.dpo.beta=0", "method.dpo.beta"),
    ("method.kto.beta=-2", "method.kto.beta"),
    ("train.max_steps=0", "train.max_steps"),
    ("train.max_steps=1.5", "train.max_steps"),
    ("train.max_steps=abc", "train.max_steps"),
    ("train.pairs_per_device=-2", "train.pairs_per_device"),
    ("train.grad_accum=0", "train.grad_accum"),
    ("train.mixed_precision=fp8", "train.mixed_precision"),
    ("train.optimizer=sgd", "train.optimizer"),
    ("train.lr_schedule=step", "train.lr_schedule"),
    ("train.adam_beta1=1.0", "train.adam_beta1"),
    ("train.timestep_max=1000", "train.timestep_max"),
    ("train.warmup_steps=-1", "train.warmup_steps"),
    ("train.keep_checkpoints=0", "train.keep_checkpoints"),
    ("train.weight_decay=-1", "train.weight_decay"),
    ("train.max_grad_norm=0", "train.max_grad_norm"),
    ("train.seed=x", "train.seed"),
    ("train.ema.decay=1.5", "train.ema.decay"),
    ("train.ema.enabled=sometimes", "train.ema.enabled"),
    ("train.nonexistent=1", "train.nonexistent"),
    ("nosection.x=1", "nosection"),
    ("train=5", "train"),
    ("data=[1]", "data"),
    ("data.resolution=0", "data.resolution"),
    ("data.crop=diagonal", "data.crop"),
    ("data.caption_dropout=1.5", "data.caption_dropout"),
    ("data.drop_ties=maybe", "data.drop_ties"),
    ("data.max_pairs=0", "data.max_pairs"),
    ("data.interpolation=magic", "data.interpolation"),
    ("methods=[]", "methods"),
    ("methods=[inpo,inpo]", "methods"),
    ("methods=[ppo]", "methods[0]"),
    ("world=mars", "world"),
    ("model.family=sd9", "model.family"),
    ("model.lora.rank=0", "model.lora.rank"),
    ("model.lora.enabled=1", "model.lora.enabled"),
    ("sample.steps=0", "sample.steps"),
    ("sample.guidance=-1", "sample.guidance"),
    ("sample.scheduler=foo", "sample.scheduler"),
    ("sample.dtype=int8", "sample.dtype"),
    ("sample.height=7.5", "sample.height"),
    ("method.inpo.inversion.mode=sideways", "method.inpo.inversion.mode"),
    ("method.inpo.inversion.steps=0", "method.inpo.inversion.steps"),
    ("sft.max_steps=0", "sft.max_steps"),
    ("sft.learning_rate=-1e-5", "sft.learning_rate"),
    ("runtime.cpu_threads=0", "runtime.cpu_threads"),
    ("eval.seeds_per_prompt=3", "eval.seeds_per_prompt"),
    ("eval.score_dtype=int4", "eval.score_dtype"),
    ("eval.bootstrap_samples=0", "eval.bootstrap_samples"),
    ("eval.baseline=3", "eval.baseline"),
    ("eval.scorers=[nope]", "eval.scorers[0]"),
    ("eval.prompt_sets=[missing.txt]", "eval.prompt_sets[0]"),
    ("eval.prompt_sets=[{tmp}/empty.txt]", "empty.txt"),
    ("eval.prompt_sets=[{tmp}/binary.txt]", "binary.txt"),
    ("toy.seed=x", "toy.seed"),
]
STAGE_CASES = [  # (command words, overrides, named)
    (["train"], ["model.pretrained=/nonexistent/model"], "model.pretrained"),
    (["train"], ["model.pretrained=no-such-model"], "model.pretrained"),  # a hub id, offline
    (["train"], ["model.vae=/nonexistent/vae"], "model.vae"),
    (["train"], ["model.unet={tmp}/no-unet"], "model.unet"),
    (["train"], ["model.unet_lora={tmp}/no-lora"], "model.unet_lora"),
    (["sft"], ["sft.enabled=true", "model.pretrained=/nonexistent/model"], "model.pretrained"),
    (["generate"], ["model.pretrained=/nonexistent/model"], "model.pretrained"),
    (["generate"], ["sample.extra_models={{x: /nonexistent/x}}"], "sample.extra_models.x"),
    (["train"], ["data.source=/nonexistent/pairs"], "data.source"),
    (["train"], ["data.source={tmp}/fixture-copy"], "data.source"),  # index built from another source
    (["train"], ["data.split=validation"], "split"),
    (["train", "--method", "sft"], ["methods=[sft]", "paths.outputs={tmp}/ties"], "tie"),
    (["train", "--method", "kto"], ["methods=[kto]", "paths.outputs={tmp}/ties"], "tie"),
    (["train"], ["sft.enabled=true", "paths.outputs={tmp}/ties"], "tie"),
    (["prepare"], ["data.source=/nonexistent/pairs"], "data.source"),
    (["check", "--no-weights"], ["data.source={tmp}/fixture-copy"], "data.source"),
    (["check", "--no-weights"], ["model.pretrained=/nonexistent/model"], "model.pretrained"),
    (["check", "--no-weights"], ["eval.scorers=[nope]"], "eval.scorers[0]"),
    (["generate"], ["eval.prompt_sets=[missing.txt]"], "eval.prompt_sets[0]"),
    (["score"], ["eval.scorers=[clip, nope]"], "eval.scorers[1]"),
]
# (file name, how to write it, named): each is the only shard of a data folder given to `inpo prepare`
IMAGE = b"\x89PNG"  # never decoded: the schema is refused first


def _shard(path: Path, columns: dict[str, pa.Array]) -> None:
    pq.write_table(pa.table(columns), path)


def _rows(n: int = 3) -> list[dict]:
    return [dict(caption="c", jpg_0=IMAGE, jpg_1=IMAGE + b"1", label_0=1.0, label_1=0.0)] * n


DATA_CASES = {
    "int-image": (lambda p: _shard(p, {**_cols(), "jpg_0": pa.array([1, 2, 3])}), "column jpg_0"),
    "string-label": (lambda p: _shard(p, {**_cols(), "label_0": pa.array(["1.0"] * 3)}), "column label_0"),
    "int-caption": (lambda p: _shard(p, {**_cols(), "caption": pa.array([1, 2, 3])}), "column caption"),
    "struct-no-bytes": (
        lambda p: _shard(p, {**_cols(), "jpg_1": pa.array([{"path": "a"}] * 3)}),
        "column jpg_1",
    ),
    "missing-column": (lambda p: _shard(p, {k: v for k, v in _cols().items() if k != "label_1"}), "label_1"),
    "empty-file": (lambda p: p.write_bytes(b""), "empty shard"),
    "garbage-file": (lambda p: p.write_bytes(b"not parquet at all" * 10), "cannot be read"),
    "zero-rows": (lambda p: write_pickapic_shard(p, []), "0 rows"),
    "label-two": (lambda p: write_pickapic_shard(p, [dict(_rows(1)[0], label_0=2.0)]), "label_0 = 2.0"),
    "label-sum": (
        lambda p: write_pickapic_shard(p, [dict(_rows(1)[0], label_0=0.5, label_1=1.0)]),
        "label_0 + label_1",
    ),
    "null-label": (lambda p: write_pickapic_shard(p, [dict(_rows(1)[0], label_0=None)]), "label_0 = None"),
}


def _cols() -> dict[str, pa.Array]:
    rows = _rows()
    return {
        "caption": pa.array([r["caption"] for r in rows]),
        "jpg_0": pa.array([r["jpg_0"] for r in rows], pa.binary()),
        "jpg_1": pa.array([r["jpg_1"] for r in rows], pa.binary()),
        "label_0": pa.array([r["label_0"] for r in rows]),
        "label_1": pa.array([r["label_1"] for r in rows]),
    }


PARAMS_CASES = {
    "empty": ("", "empty"),
    "a-list": ("- 1\n- 2\n", "params"),
    "broken-yaml": ("train: {max_steps: [\n", "params"),
    "unknown-section": ("bogus: 1\n", "bogus"),
}

N_CASES = len(CONFIG_CASES) + len(STAGE_CASES) + len(DATA_CASES) + len(PARAMS_CASES) + 1  # + missing file


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A prepared tiny world, a params file for it, a pair index with ties, and odd prompt files."""
    import shutil

    from inpo.data.filtering import prepare_pairs

    root = tmp_path_factory.mktemp("bad-inputs")
    world = make_world(root)
    cfg = make_config(root, world)
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(to_dict(cfg)))
    ties = make_config(root, world, overrides=["data.drop_ties=false", f"paths.outputs={root}/ties"])
    summary = prepare_pairs(ties.data, root / "ties" / "prepare", progress=False)
    assert summary.ties_kept > 0
    shutil.copytree(world["fixture"], root / "fixture-copy")
    (root / "empty.txt").write_text("\n \n")
    (root / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    return root, params


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _refused(capsys, root: Path, argv: list[str], *named: str) -> None:
    before = _files(root)
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        code = main(argv)
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE")
        else:
            os.environ["HF_HUB_OFFLINE"] = old
    err = capsys.readouterr().err
    assert code == 2, f"{argv}: exit {code}; stderr {err[-600:]!r}"
    for name in named:
        assert name in err, f"{argv}: the message does not name {name!r}: {err[-600:]!r}"
    assert "Traceback" not in err and err.startswith("inpo"), f"{argv}: not a clear message: {err[-600:]!r}"
    assert _files(root) == before, f"{argv}: wrote {sorted(map(str, _files(root) - before))[:5]}"


@pytest.mark.parametrize(("override", "named"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_value_is_refused(workspace, capsys, override, named):
    root, params = workspace
    override = override.format(tmp=root)
    _refused(capsys, root, ["config", "--params", str(params), override], named.format(tmp=root))


@pytest.mark.parametrize(("words", "overrides", "named"), STAGE_CASES, ids=lambda c: str(c)[:40])
def test_stage_input_is_refused_before_work(workspace, capsys, words, overrides, named):
    root, params = workspace
    argv = [*words, "--params", str(params), *(o.format(tmp=root) for o in overrides)]
    _refused(capsys, root, argv, named)


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_file_is_refused_by_prepare(workspace, tmp_path, capsys, case):
    root, params = workspace
    write, named = DATA_CASES[case]
    folder = tmp_path / case
    folder.mkdir()
    write(folder / "train-00000.parquet")
    out = tmp_path / "out"
    argv = ["prepare", "--no-progress", "--params", str(params), f"data.source={folder}", f"paths.outputs={out}"]
    _refused(capsys, tmp_path, argv, named, str(folder))


@pytest.mark.parametrize("case", sorted(PARAMS_CASES))
def test_bad_params_file_is_refused(tmp_path, capsys, case):
    text, named = PARAMS_CASES[case]
    params = tmp_path / "params.yaml"
    params.write_text(text)
    _refused(capsys, tmp_path, ["config", "--params", str(params)], named)


def test_missing_params_file_is_refused(tmp_path, capsys):
    _refused(capsys, tmp_path, ["config", "--params", str(tmp_path / "nope.yaml")], "nope.yaml")


def test_the_table_has_at_least_sixty_cases():
    assert N_CASES >= 60, N_CASES
