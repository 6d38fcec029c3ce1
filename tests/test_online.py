"""Online rounds (issue 14, part 2): the round labeller is the world's own, the stopping rule and the
settings refused before any work. Two real rounds, killed in round 2 and resumed there, run through
the deployment in tests/test_orchestration_online.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inpo.config import DEFAULT_PARAMS, load_config


def test_round_labels_are_the_worlds_labeller(tmp_path: Path) -> None:
    """toy: the oracle with the tie margin; toy-mixed: the Bradley–Terry draw at the offline pairs'
    calibration (band, temperature read from their metadata), from the round's own generator."""
    from inpo.toyworld.mixed import draw_labels
    from inpo.toyworld.online_pairs import LABEL_STREAM, ROUND_SEED_STRIDE, world_labels

    scores = torch.tensor([[0.9, 0.2], [0.5, 0.49], [0.1, 0.6]])
    toy = load_config(DEFAULT_PARAMS, ["toy.pairs.tie_margin=0.05"])
    assert world_labels(toy, scores, run_seed=3).tolist() == [1.0, 0.5, 0.0]
    data = tmp_path / "data"
    (data / "world-pairs").mkdir(parents=True)
    (data / "world-pairs" / "metadata.json").write_text(
        json.dumps({"labels": {"tie_band": 0.02, "temperature": 0.1}})
    )
    mixed = load_config(DEFAULT_PARAMS, ["world=toy-mixed", f"paths.data={data}"])
    got = world_labels(mixed, scores, run_seed=3)
    delta = (scores[:, 0] - scores[:, 1]).double()
    expected = draw_labels(
        delta, 0.02, 0.1, torch.Generator().manual_seed(ROUND_SEED_STRIDE * 3 + LABEL_STREAM)
    )
    assert torch.equal(got, expected) and float(got[1]) == 0.5  # |Δ| = 0.01 < band: a tie
    # SmPO's smoothed labels: the draw's own probability sigmoid(Δ / T) (½ in the band); toy: Δ / τ_oracle
    from inpo.toyworld.online_pairs import world_soft_labels

    soft = world_soft_labels(mixed, scores, got)
    assert soft.tolist() == pytest.approx(
        [torch.sigmoid(torch.tensor(7.0)).item(), 0.5, torch.sigmoid(torch.tensor(-5.0)).item()]
    )
    toy_soft = world_soft_labels(toy, scores, world_labels(toy, scores, run_seed=3))
    assert toy_soft.tolist() == pytest.approx(
        [torch.sigmoid(torch.tensor(7.0)).item(), 0.5, torch.sigmoid(torch.tensor(-5.0)).item()]
    )


def test_rounds_stop_when_the_guard_lower_bound_stops_rising(tmp_path: Path) -> None:
    from inpo.online import rounds

    lows = {1: 0.30, 2: 0.45, 3: 0.44, 4: 0.45, 5: 0.9}
    labeller = {1: 0.6, 2: 0.7, 3: 0.8, 4: 0.7, 5: 0.9}  # round 3: labeller up, guard low down
    ran: list[int] = []

    def fake_round(cfg, k, start, progress=True):
        ran.append(k)
        metrics = {"toy/oracle_strict/win_low": lows[k], "toy/oracle/win_rate": labeller[k]}
        return {"round": k, "weights": f"w{k}", "metrics": {"inpo": metrics}}

    cfg = load_config(DEFAULT_PARAMS, ["online.rounds=5", "online.patience=2", f"paths.outputs={tmp_path}"])
    summary = rounds.run_rounds(cfg, fake_round, progress=False)
    assert ran == [1, 2, 3, 4]  # 0.44 and 0.45 do not rise above the best, 0.45: stop after round 4
    assert "did not rise for 2 rounds" in summary["stopped"] and summary["final_weights"] == "w4"
    assert [r["diverging"] for r in summary["rounds"]] == [False, False, True, False]


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("world=pickapic", "online.prompts: world 'pickapic' has no prompts of its own"),
        ("online.prompts=parti", "online.prompts: world 'toy' samples its own training prompts"),
        ("online.guard_scorer=oracle", "online.guard_scorer"),
        ("online.method=orpo", "online.method: unknown method 'orpo'"),
    ],
)
def test_online_refuses_what_it_cannot_run_before_any_work(tmp_path: Path, capsys, override, named) -> None:
    from inpo.cli import main

    assert main(["online", f"paths.outputs={tmp_path}", override]) == 2
    assert named in capsys.readouterr().err and not (tmp_path / "online").exists()


def test_a_multi_process_round_stage_runs_under_accelerate_from_the_rounds_own_params(
    tmp_path: Path, monkeypatch
) -> None:
    """runtime.num_processes > 1: the round's train/generate stage is relaunched (inpo.launch) from a
    params file that loads back to exactly the round's config; one process: it runs here."""
    from inpo import launch
    from inpo.config import load_config as load
    from inpo.online.rounds import round_configs
    from inpo.stages.online import run_distributed

    cfg = load_config(DEFAULT_PARAMS, [f"paths.outputs={tmp_path}", "runtime.num_processes=2"])
    train_cfg, _ = round_configs(cfg, 2, str(tmp_path / "round-1-unet"))
    calls: list[list[str]] = []
    monkeypatch.setattr(launch, "relaunch", lambda c, argv: calls.append(list(argv)) or 0)
    ran: list[str] = []
    run_distributed(train_cfg, "train", tmp_path / "round-2", lambda: ran.append("here"))
    assert not ran and calls[0][:2] == ["train", "--params"]
    assert load(calls[0][2]) == train_cfg and train_cfg.model.unet == str(tmp_path / "round-1-unet")
    monkeypatch.setattr(launch, "relaunch", lambda c, argv: 3)
    with pytest.raises(RuntimeError, match="exit code 3"):
        run_distributed(train_cfg, "generate", tmp_path / "round-2", lambda: None)
    single = load_config(DEFAULT_PARAMS, [f"paths.outputs={tmp_path}"])
    run_distributed(single, "train", tmp_path / "round-2", lambda: ran.append("here"))
    assert ran == ["here"] and len(calls) == 1


def test_the_rounds_figure_plots_each_judges_win_rate_per_round(tmp_path: Path) -> None:
    from inpo.online.figures import round_series, write_rounds_figure

    def metrics(lab: float, guard: float) -> dict[str, float]:
        return {
            "toy/oracle/win_rate": lab, "toy/oracle/win_low": lab - 0.1, "toy/oracle/win_high": lab + 0.1,
            "toy/oracle_strict/win_rate": guard, "toy/oracle_strict/win_low": guard - 0.2,
            "toy/oracle_strict/win_high": guard + 0.05,
        }  # fmt: skip

    summary = {
        "stopped": "rounds",
        "rounds": [
            {"round": 1, "diverging": False, "metrics": {"inpo": metrics(0.6, 0.55)}},
            {"round": 2, "diverging": True, "metrics": {"inpo": metrics(0.7, 0.5)}},
        ],
    }
    labeller, guard = round_series(summary, "toy", ["oracle"], "oracle_strict", "inpo")
    assert (labeller.role, labeller.win) == ("labeller", [0.6, 0.7])
    assert labeller.high == pytest.approx([0.7, 0.8])
    assert (guard.judge, guard.role) == ("oracle_strict", "guard") and guard.low == pytest.approx([0.35, 0.3])
    png = write_rounds_figure(summary, [labeller, guard], tmp_path / "rounds.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
