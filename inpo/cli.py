"""``inpo <stage> [--params params.yaml] [section.key=value ...]``: one command per pipeline stage.

Each stage lives in its own module under :mod:`inpo.stages` and exposes ``run(cfg, **options)``
plus an optional ``add_arguments(parser)`` for stage options that are not config (e.g. which
method of ``methods`` to train). Config values are never CLI flags: they come from params.yaml and
dotted overrides, the same path DVC, Prefect and the tests use.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Sequence

from .config import DEFAULT_PARAMS, ConfigError, load_config
from .errors import InputError
from .launch import needs_launch, relaunch

# command words -> (module, one-line help). Imported lazily so `inpo --help` is instant.
STAGES: dict[tuple[str, ...], tuple[str, str]] = {
    ("config",): ("inpo.stages.show_config", "Print the validated config (after overrides) as YAML"),
    ("params",): (
        "inpo.stages.set_params",
        "Validate overrides (or a file of them) and write them into params.yaml",
    ),
    ("check",): (
        "inpo.stages.check",
        "Pre-flight: validate config, load every weight and the data, estimate memory",
    ),
    ("pipeline", "dvc"): (
        "inpo.stages.pipeline_dvc",
        "Write dvc.yaml from the stage table (--check: compare)",
    ),
    ("prepare",): ("inpo.stages.prepare", "Filter the pair source into a validated pair index"),
    ("sft",): ("inpo.stages.sft", "Optional SFT of the reference on the winners (sft.enabled)"),
    ("train",): ("inpo.stages.train", "Preference-train each method of `methods` (or --method M)"),
    ("generate",): (
        "inpo.stages.generate",
        "Fixed-seed images of the base and every trained method (resumable)",
    ),
    ("score",): (
        "inpo.stages.score",
        "Score every generated image; medians, means, win-rates with intervals",
    ),
    ("report",): ("inpo.stages.report", "Markdown/HTML report: tables, win-rate charts, image grids"),
    ("relabel",): ("inpo.stages.relabel", "AI feedback: relabel the pair set's winners with a scorer"),
    ("online",): ("inpo.stages.online", "Online rounds: sample pairs from the policy, label, train, evaluate, repeat"),
    ("world", "base"): ("inpo.stages.world_base", "The world's base-model recipe (toy, toy-mixed, toy-flow: from scratch on CPU)"),
    ("world", "pairs"): (
        "inpo.stages.world_pairs",
        "The world's preference pairs (toy, toy-flow: base samples judged by the oracle; toy-mixed: three generators, noisy labels)",
    ),
}


LEVELS = {-1: ("ERROR", "error"), 0: ("WARNING", "warning"), 1: ("INFO", "info"), 2: ("DEBUG", "debug")}


def set_verbosity(level: int) -> None:
    """``-q`` (-1) … ``-vv`` (2): Python logging, transformers' and diffusers' own verbosity (read from
    the environment when they are imported, also by processes ``accelerate launch`` starts) and, at
    ``-q``, progress bars off."""
    import logging
    import os

    if level == 0:
        return  # the libraries' defaults
    py_level, lib_level = LEVELS[max(-1, min(2, level))]
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(py_level)
    os.environ["TRANSFORMERS_VERBOSITY"] = os.environ["DIFFUSERS_VERBOSITY"] = lib_level
    if level < 0:
        os.environ["TQDM_DISABLE"] = "1"


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inpo",
        description="Preference alignment of text-to-image diffusion models (InPO, Diffusion-DPO, SFT, KTO).",
    )
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {}
    groups[()] = parser.add_subparsers(dest="command", metavar="<stage>", required=True)
    for words, (module, help_text) in STAGES.items():
        for depth in range(1, len(words)):
            if words[:depth] not in groups:
                group = groups[words[: depth - 1]].add_parser(
                    words[depth - 1], help=f"{words[depth - 1]} commands"
                )
                groups[words[:depth]] = group.add_subparsers(metavar="<command>", required=True)
        sub = groups[words[:-1]].add_parser(words[-1], help=help_text, description=help_text)
        sub.add_argument(
            "--params", default=str(DEFAULT_PARAMS), help="params.yaml to read (default: %(default)s)"
        )
        sub.add_argument("overrides", nargs="*", metavar="section.key=value", help="dotted config overrides")
        sub.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
        sub.add_argument("-q", "--quiet", action="count", default=0, help="errors only, no progress bars")
        sub.set_defaults(_module=module)
        stage = importlib.import_module(module)  # stage modules keep heavy imports inside run()
        if hasattr(stage, "add_arguments"):
            stage.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = vars(_build_parser().parse_args(argv))
    module, params, overrides = args.pop("_module"), args.pop("params"), args.pop("overrides")
    set_verbosity(args.pop("verbose") - args.pop("quiet"))
    options = {k: v for k, v in args.items() if not k.startswith("command")}
    try:
        cfg = load_config(params, overrides)
    except ConfigError as err:
        print(f"inpo: config error: {err}", file=sys.stderr)
        return 2
    command = " ".join(next(words for words, (m, _) in STAGES.items() if m == module))
    stage = importlib.import_module(module)
    try:  # the stage's input checks, before any launch, load or write (`inpo check` runs them all)
        if hasattr(stage, "preflight"):
            wanted = inspect.signature(stage.preflight).parameters
            stage.preflight(cfg, **{k: v for k, v in options.items() if k in wanted})
    except InputError as err:
        print(f"inpo {command}: {err}", file=sys.stderr)
        return 2
    if needs_launch(cfg, module):
        return relaunch(cfg, argv)
    if cfg.runtime.cpu_threads is not None:
        import torch

        torch.set_num_threads(cfg.runtime.cpu_threads)
    run = stage.run
    # a stage that edits params (``inpo params``) also gets the file and the overrides themselves
    wanted = inspect.signature(run).parameters
    options.update({k: v for k, v in (("params", params), ("overrides", overrides)) if k in wanted})
    try:
        run(cfg, **options)
    except ConfigError as err:
        print(f"inpo: config error: {err}", file=sys.stderr)
        return 2
    except InputError as err:  # what only the stage could see (a row of a shard, a changed image)
        print(f"inpo {command}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
