"""A result is never stale: checkpoints are keyed by config, pair data, starting model and code, and
a resumed run's records equal an uninterrupted run's (issue 11, part 1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from inpo import layout
from inpo.train.checkpoint import checkpoint_dirs, latest_checkpoint
from inpo.train.loop import train
from inpo.train.records import read_jsonl
from tests.train_helpers import make_config, make_world, run_spec


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("stale")
    return make_world(root)


def _drop_last_pair(index: Path) -> None:
    """Rewrite the pair index without its last pair (as a changed source + `inpo prepare` would)."""
    table = pq.read_table(index)
    pq.write_table(table.slice(0, table.num_rows - 1).replace_schema_metadata(table.schema.metadata), index)


def test_checkpoint_folder_follows_config_pair_data_and_starting_model(world, tmp_path):
    cfg = make_config(tmp_path, world)
    first = run_spec(cfg, "dpo").ckpt_dir
    assert run_spec(cfg, "dpo").ckpt_dir == first  # a retry resumes
    assert json.loads((first / "identity.json").read_text())["pair_index"]["sha256"]
    beta = make_config(tmp_path, world, overrides=["method.dpo.beta=123"])
    assert run_spec(beta, "dpo").ckpt_dir != first
    other_inpo = make_config(tmp_path, world, overrides=["method.inpo.beta=123"])
    assert run_spec(other_inpo, "dpo").ckpt_dir == first  # another method's settings do not matter

    _drop_last_pair(layout.pair_index(cfg))
    changed_data = run_spec(cfg, "dpo").ckpt_dir
    assert changed_data != first

    model = tmp_path / "model-copy"
    shutil.copytree(world["model"], model)
    moved = make_config(tmp_path, world, overrides=[f"model.pretrained={model}"])
    same_content = run_spec(moved, "dpo")
    assert same_content.ckpt_dir.name != changed_data.name  # the config names another folder...
    identity = json.loads((same_content.ckpt_dir / "identity.json").read_text())
    old = json.loads((changed_data / "identity.json").read_text())
    assert identity["starting_model"] == old["starting_model"]  # ...but the content is the same
    config_json = model / "unet" / "config.json"
    config_json.write_text(config_json.read_text() + "\n")
    rewritten = json.loads((run_spec(moved, "dpo").ckpt_dir / "identity.json").read_text())
    assert rewritten["starting_model"]["pretrained"] != identity["starting_model"]["pretrained"]


def test_code_hash_covers_the_files_dvc_tracks_for_the_stage(tmp_path):
    from inpo.identity import code_sha256, project_root
    from inpo.pipeline.dvc import code_deps
    from inpo.pipeline.stages import STAGE_BY_NAME

    for package in ("inpo", "evaluation", "flows"):
        shutil.copytree(
            project_root() / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    deps = code_deps(STAGE_BY_NAME["train"], tmp_path)
    assert "inpo/losses.py" in deps
    before = code_sha256(deps, tmp_path)
    losses = tmp_path / "inpo" / "losses.py"
    losses.write_text(losses.read_text() + "\n# a changed loss\n")
    assert code_sha256(deps, tmp_path) != before
    readme = tmp_path / "inpo" / "train" / "notes.md"  # not code: ignored inside a code folder
    readme.write_text("x")
    after = code_sha256(deps, tmp_path)
    readme.write_text("y")
    assert code_sha256(deps, tmp_path) == after


def test_changed_pair_data_starts_fresh_says_so_and_keeps_the_old_run(world, tmp_path, capsys):
    cfg = make_config(tmp_path, world, overrides=["train.max_steps=2", "train.checkpoint_every=1"])
    old = train(run_spec(cfg, "dpo"))
    old_dir = run_spec(cfg, "dpo").ckpt_dir
    assert [p.name for p in checkpoint_dirs(old_dir)] == ["step-000001", "step-000002"]
    _drop_last_pair(layout.pair_index(cfg))
    capsys.readouterr()
    fresh = train(run_spec(cfg, "dpo"))
    out = capsys.readouterr().out
    assert fresh.resumed_from == 0 and old.resumed_from == 0
    assert "starting fresh" in out and "pair data" in out and str(old_dir) in out
    assert latest_checkpoint(old_dir) is not None  # nothing deleted


def _validate(step, unet, components, out_dir):
    return {"marker": float(step)}


def test_resume_leaves_records_as_an_uninterrupted_run(world, tmp_path):
    over = ["train.max_steps=3", "train.checkpoint_every=1", "train.validate_every=1"]
    cfg = make_config(tmp_path, world, overrides=over)
    run = run_spec(cfg, "dpo", validate=_validate)
    straight = train(run)
    metrics, validation = run.out_dir / "metrics.jsonl", run.out_dir / "validation.jsonl"
    want_steps = [r["step"] for r in read_jsonl(metrics)]
    assert want_steps == [0, 1, 2] and [r["step"] for r in read_jsonl(validation)] == [1, 2, 3]

    # killed after step 3's validation was logged, before its checkpoint's successor... i.e. a run
    # that wrote rows past its last checkpoint (step 2), then a line cut short by the kill:
    shutil.rmtree(run.ckpt_dir / "step-000003")
    for path in (metrics, validation):
        with open(path, "a") as fh:
            fh.write('{"step": 3, "loss": 9.9}\n{"step": 4, "lo')
    resumed = train(run_spec(cfg, "dpo", validate=_validate))
    assert resumed.resumed_from == 2
    assert [r["step"] for r in read_jsonl(metrics)] == want_steps
    assert [r["step"] for r in read_jsonl(validation)] == [1, 2, 3]
    assert len(validation.read_text().splitlines()) == 3

    # killed after the last checkpoint, before the final validation and weights
    lines = validation.read_text().splitlines()
    validation.write_text("\n".join(lines[:2]) + "\n")
    shutil.rmtree(resumed.weights_dir)
    last = train(run_spec(cfg, "dpo", validate=_validate))
    assert last.resumed_from == 3
    assert [r["step"] for r in read_jsonl(validation)] == [1, 2, 3]
    assert (last.weights_dir / "diffusion_pytorch_model.safetensors").is_file()
    assert last.last["loss"] == pytest.approx(straight.last["loss"])  # the summary has the final step


def test_a_shard_rewritten_after_prepare_is_refused_when_read(world, tmp_path):
    from inpo.data import PairDataset
    from inpo.data.sources import PairDataError

    fixture = tmp_path / "fixture"
    shutil.copytree(world["fixture"], fixture)
    cfg = make_config(tmp_path, {**world, "fixture": fixture})
    dataset = PairDataset(layout.pair_index(cfg), cfg.data, seed=0)
    assert len(dataset[0].caption) > 0  # reads fine
    shard = sorted(fixture.glob("*.parquet"))[0]
    table = pq.read_table(shard)
    swapped = table.take(list(range(table.num_rows))[::-1])  # same rows, same count, other order
    pq.write_table(swapped, shard)
    dataset = PairDataset(layout.pair_index(cfg), cfg.data, seed=0)
    with pytest.raises(PairDataError, match=f"{shard.name}: row .*content hash differs"):
        for i in range(len(dataset)):
            dataset[i]


def test_kept_ties_reach_the_loss_as_soft_labels(world, tmp_path):
    from inpo.data import PairDataset
    from inpo.data.sources import PairDataError

    cfg = make_config(tmp_path, world, overrides=["data.drop_ties=false"])
    dataset = PairDataset(layout.pair_index(cfg), cfg.data, seed=0)
    labels = dataset.pair_fields(list(range(len(dataset))), ["label_w"])["label_w"]
    assert set(labels.tolist()) == {0.5, 1.0}
    result = train(run_spec(cfg, "dpo"))  # DPO asks for label_w and trains the ties
    assert result.steps == 2
    with pytest.raises(PairDataError, match="tie"):
        train(run_spec(cfg, "sft"))  # refused before the model is loaded


def test_restart_and_resume_from_a_named_step_set_checkpoints_aside(world, tmp_path, capsys):
    """``inpo train --resume-from STEP`` / ``--restart``: the later checkpoints (or all) move aside,
    nothing is deleted, and training continues from that step (or from 0)."""
    from inpo.errors import InputError
    from inpo.stages.train import _choose_start

    over = ["train.max_steps=3", "train.checkpoint_every=1", "train.keep_checkpoints=3"]
    cfg = make_config(tmp_path, world, overrides=over)
    first = train(run_spec(cfg, "dpo"))
    folder = run_spec(cfg, "dpo").ckpt_dir
    assert [p.name for p in checkpoint_dirs(folder)][-3:] == ["step-000001", "step-000002", "step-000003"]
    with pytest.raises(InputError, match="steps"):
        _choose_start(folder, "dpo", 7)
    _choose_start(folder, "dpo", 1)
    assert latest_checkpoint(folder).name == "step-000001"
    aside = [p for p in folder.parent.iterdir() if ".set-aside-" in p.name]
    assert len(aside) == 1 and sorted(p.name for p in aside[0].iterdir()) == ["step-000002", "step-000003"]
    again = train(run_spec(cfg, "dpo"))
    assert again.resumed_from == 1 and again.last["loss"] == pytest.approx(first.last["loss"])
    _choose_start(folder, "dpo", None)  # --restart
    assert latest_checkpoint(folder) is None and "all checkpoints moved" in capsys.readouterr().out
    assert train(run_spec(cfg, "dpo")).resumed_from == 0


def test_two_set_asides_within_a_second_keep_both(tmp_path):
    from inpo.train.checkpoint import set_aside

    root = tmp_path / "run"
    for round_ in range(2):
        (root / "step-000001").mkdir(parents=True)
        (root / "step-000001" / "mark").write_text(str(round_))
        set_aside(root)
    kept = sorted(p for p in tmp_path.iterdir() if ".set-aside-" in p.name)
    assert len(kept) == 2 and sorted((p / "step-000001" / "mark").read_text() for p in kept) == ["0", "1"]
