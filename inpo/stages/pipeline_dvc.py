"""``inpo pipeline dvc [--check]``: write ``dvc.yaml`` from the stage table (``--check``: only compare)."""

from __future__ import annotations

import argparse
import sys

from ..config import DEFAULT_PARAMS, Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if dvc.yaml differs from the table instead of writing it"
    )


def run(cfg: Config, check: bool = False) -> None:
    from ..io import write_text_atomic
    from ..pipeline.dvc import render_dvc_yaml

    root = DEFAULT_PARAMS.parent
    path = root / "dvc.yaml"
    text = render_dvc_yaml(root)
    current = path.read_text() if path.is_file() else ""
    if check:
        if current != text:
            print(
                f"{path} is stale: run `inpo pipeline dvc` to regenerate it from inpo/pipeline/stages.py",
                file=sys.stderr,
            )
            raise SystemExit(1)
        print(f"{path}: up to date")
        return
    write_text_atomic(path, text)
    print(f"wrote {path}" + (" (unchanged)" if current == text else ""))
