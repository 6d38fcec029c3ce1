"""``inpo params --from FILE [section.key=value ...]``: validate overrides, then write them into
params.yaml (comments kept, the way ``dvc exp run -S`` writes), so DVC tracks what will run.

FILE holds one ``section.key=value`` per line (``#`` comments allowed): see ``configs/``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..config import Config, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="from_file", default=None, help="a file of section.key=value lines")


def read_overrides(path: str | Path) -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines()]
    return [line for line in lines if line]


def run(
    cfg: Config, from_file: str | None = None, params: str = "params.yaml", overrides: Sequence[str] = ()
) -> None:
    from ..params_file import write_params

    items = [*(read_overrides(from_file) if from_file else []), *overrides]
    load_config(params, items)  # refuse anything invalid before touching the file
    write_params(Path(params), items)
    print(f"params: wrote {len(items)} settings into {params}")
