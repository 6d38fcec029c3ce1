"""Head-to-head comparisons between arms and the paper's claims table, per world.

    .venv/bin/python -m benchmarks.claims      # docs/claims.md from the committed alignment results

A head-to-head compares two arms on the same items and seeds (pooled over training seeds, an item's
seeds resampled together): paired win-rate of A over B and mean oracle gain, 95% bootstrap intervals.
A claim "A beats B" **holds** when both lower bounds clear 0.5 and 0, **fails** when an upper bound
is below 0.5 or 0 (B is better), and is **open** otherwise (the intervals allow either) or when the
evidence was not measured. The primary endpoint (issue 10's protocol) is InPO-corrected vs DPO at
the last step, guidance 7.5; every other row is secondary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from .harness import REPO, RESULTS, EvalItems, RunRecord, compare, fmt_ci, write_atomic

CLAIMS_DOC = REPO / "docs" / "claims.md"
PRIMARY = ("inpo-corrected", "dpo")
HEAD_TO_HEAD: tuple[tuple[str, str], ...] = (
    PRIMARY,
    ("inpo-faithful", "dpo"),
    ("inpo-corrected", "sft"),
    ("sft-inpo", "sft-dpo"),
    ("sft-inpo", "inpo-corrected"),
    ("inpo-faithful", "inpo-corrected"),
)
WORLD_RESULTS = {"toy": "toy_alignment.json", "toy-mixed": "toy_mixed_alignment.json"}
# benchmarks.claims_ablations: guidance 3.0, inversion steps, CFG in inversion, the SFT-200 control
WORLD_ABLATIONS = {"toy": "toy_claims_ablations.json", "toy-mixed": "toy_mixed_claims_ablations.json"}
FROM_ABLATIONS = ("10 inversion steps balance cost and quality", "CFG in inversion hurts")
# benchmarks.online_evidence: offline InPO vs offline SmPO vs online InPO rounds at equal pairs and steps
WORLD_ONLINE = {"toy": "online_evidence_toy.json", "toy-mixed": "online_evidence_toy_mixed.json"}
FROM_ONLINE = (
    ("Online rounds beat offline InPO (the paper's future work)", "online-inpo vs offline-inpo"),
    ("SmPO beats InPO (SmPO, ICML 2025)", "offline-smpo vs offline-inpo"),
)


def head_to_head(
    runs: Sequence[RunRecord], a: str, b: str, items: EvalItems, samples: int
) -> dict[str, Any] | None:
    """Arm ``a`` vs arm ``b`` at their last common evaluated step, over the training seeds both ran."""
    mine = {r.seed: r for r in runs if r.name == a}
    theirs = {r.seed: r for r in runs if r.name == b}
    seeds = sorted(set(mine) & set(theirs))
    if not seeds:
        return None
    step = max(set.intersection(*(set(mine[s].evals) & set(theirs[s].evals) for s in seeds)))
    x = np.concatenate([mine[s].evals[step]["scores"] for s in seeds])
    y = np.concatenate([theirs[s].evals[step]["scores"] for s in seeds])
    groups = np.tile(items.ids, len(seeds))
    return {"a": a, "b": b, "step": step, "seeds": seeds, **compare(x, y, groups, samples)}


def verdict(h: dict[str, Any] | None) -> str:
    if h is None:
        return "open"
    if h["win_low"] > 0.5 and h["gain_low"] > 0:
        return "holds"
    if h["win_high"] < 0.5 or h["gain_high"] < 0:
        return "fails"
    return "open"


def evidence(h: dict[str, Any] | None) -> str:
    if h is None:
        return "not measured"
    return (
        f"{h['a']} vs {h['b']} at step {h['step']}: win-rate {fmt_ci(h['win_rate'], h['win_low'], h['win_high'])}, "
        f"mean gain {fmt_ci(h['mean_gain'], h['gain_low'], h['gain_high'], 4)}"
    )


def _compute_claim(payload: dict[str, Any]) -> tuple[str, str]:
    """'InPO reaches DPO's quality with ~3.6× less compute' from the cost-to-reach table."""
    c = payload.get("cost_to_reach") or {}
    dpo, inpo = c.get("dpo"), c.get("inpo-corrected")
    if not c or c.get("plateau", 0) <= 0 or dpo is None:
        return "open", "DPO has no positive plateau to reach"
    if inpo is None:
        return "fails", f"InPO-corrected never reaches {c['target']:.4f} (90% of DPO's best mean gain)"
    ratio = dpo["forward_rows"] / inpo["forward_rows"]
    line = f"InPO reaches it at step {inpo['step']} with {ratio:.2f}× fewer UNet rows than DPO (step {dpo['step']})"
    return ("holds" if ratio >= 3.6 else "fails"), line


def online_claims(online: dict[str, Any] | None) -> list[dict[str, str]]:
    """The online-rounds and SmPO rows from a world's :mod:`benchmarks.online_evidence` payload."""
    if online is None:
        return [
            {"claim": c, "verdict": "open", "evidence": "online evidence not run in this world yet"}
            for c, _ in FROM_ONLINE
        ]
    p = online["protocol"]
    trained = sorted({sum(r["trained_on"] for r in rounds) for rounds in online["rounds"].values()})
    spread = f"{trained[0]}" if len(trained) == 1 else f"{trained[0]}–{trained[-1]}"
    setup = f"after {p['steps']} steps, seeds {p['train_seeds']}"
    rows = []
    for claim, key in FROM_ONLINE:
        h = online["head_to_head"].get(key)
        if h is None:
            rows.append({"claim": claim, "verdict": "open", "evidence": "not measured"})
            continue
        line = (
            f"{key} {setup}: win-rate {fmt_ci(h['win_rate'], h['win_low'], h['win_high'])}, "
            f"mean gain {fmt_ci(h['mean_gain'], h['gain_low'], h['gain_high'], 4)}"
        )
        if key.startswith("online"):
            line += f"; {p['rounds']} rounds trained on {spread} distinct pairs, offline on {online['offline_pairs']}"
        rows.append({"claim": claim, "verdict": verdict(h), "evidence": line})
    return rows


def claims(
    payload: dict[str, Any], ablations: dict[str, Any] | None = None, online: dict[str, Any] | None = None
) -> list[dict[str, str]]:
    """The claims table of one world's alignment payload (its ``head_to_head`` entries); the inversion
    claims come from the world's ablation payload (:mod:`benchmarks.claims_ablations`) when given."""
    h = {(e["a"], e["b"]): e for e in payload.get("head_to_head", [])}
    rows = [
        ("InPO beats DPO at equal steps (primary endpoint)", h.get(PRIMARY)),
        ("InPO beats SFT", h.get(("inpo-corrected", "sft"))),
        ("SFT→InPO beats SFT→DPO", h.get(("sft-inpo", "sft-dpo"))),
        ("SFT-initialised policy and reference help InPO", h.get(("sft-inpo", "inpo-corrected"))),
        ("faithful beats corrected inversion", h.get(("inpo-faithful", "inpo-corrected"))),
    ]
    out = [{"claim": claim, "verdict": verdict(e), "evidence": evidence(e)} for claim, e in rows]
    v, line = _compute_claim(payload)
    out.insert(
        1, {"claim": "InPO reaches DPO's quality with ~3.6× less compute", "verdict": v, "evidence": line}
    )
    done = {c["claim"]: c for c in (ablations or {}).get("claims", []) if c["guidance"] == 7.5}
    for claim in FROM_ABLATIONS:
        row = done.get(claim, {"verdict": "open", "evidence": "ablation not run in this world yet"})
        out.append({"claim": claim, "verdict": row["verdict"], "evidence": row["evidence"]})
    return out + online_claims(online)


def ablation_lines(world: str, ablations: dict[str, Any]) -> list[str]:
    """Every claim the ablation run measured, at each evaluation guidance (secondary evidence)."""
    s = ablations["setup"]
    lines = [
        f"### `{world}` at two evaluation guidances, and the SFT-for-200-steps control",
        "",
        f"From `benchmarks/results/{WORLD_ABLATIONS[world]}` (`python -m benchmarks.claims_ablations --world "
        f"{world}`): every arm retrained, evaluated once at its final step; DDIM {s['sample_steps']} steps, "
        f"guidance {' and '.join(map(str, s['guidances']))}; training seeds {s['train_seeds']} (inversion "
        f"ablations: {s['ablation_seeds']}){'' if ablations['complete'] else '; **partial run**'}.",
        "",
        "| claim | guidance | verdict | evidence |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {c['claim']} | {c['guidance']} | {c['verdict']} | {c['evidence']} |" for c in ablations["claims"]
    ]
    return [*lines, ""]


def claims_markdown(
    payloads: dict[str, dict[str, Any]],
    ablations: dict[str, dict[str, Any]] | None = None,
    online: dict[str, dict[str, Any]] | None = None,
) -> str:
    worlds = list(payloads)
    lines = [
        "# The paper's claims, per toy world",
        "",
        "Generated by `python -m benchmarks.claims` from the committed alignment results "
        f"({', '.join(f'`benchmarks/results/{WORLD_RESULTS[w]}`' for w in worlds)}) and the claims "
        "ablations (`benchmarks/results/*_claims_ablations.json`) and the online evidence "
        "(`benchmarks/results/online_evidence_*.json`, its own protocol: docs/online_rounds.md). "
        "**holds**: A beats B (win-rate low > 0.5 and mean-gain low > 0, 95% paired bootstrap); "
        "**fails**: an upper bound below 0.5 or 0; **open**: the intervals allow either, or not measured.",
        "",
    ]
    for world, payload in payloads.items():
        s = payload["setup"]
        lines += [
            f"## World `{world}`",
            "",
            f"Evaluation: DDIM {s['sample_steps']} steps, guidance {s['guidance']}; {s['n_items']} items; "
            f"training seeds {s['train_seeds']}; steps {s['eval_steps']}.",
            "",
            "| claim | verdict | evidence |",
            "|---|---|---|",
        ]
        extra = (ablations or {}).get(world)
        rows = claims(payload, extra, (online or {}).get(world))
        lines += [f"| {c['claim']} | {c['verdict']} | {c['evidence']} |" for c in rows]
        lines.append("")
        lines += ablation_lines(world, extra) if extra else []
    return "\n".join(lines)


def read_results(table: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {w: json.loads((RESULTS / f).read_text()) for w, f in table.items() if (RESULTS / f).exists()}


def main() -> None:
    text = claims_markdown(
        read_results(WORLD_RESULTS), read_results(WORLD_ABLATIONS), read_results(WORLD_ONLINE)
    )
    write_atomic(CLAIMS_DOC, text)
    print(text)


if __name__ == "__main__":
    main()
