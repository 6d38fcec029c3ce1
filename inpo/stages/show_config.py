"""``inpo config``: print the validated config after overrides."""

from __future__ import annotations

import yaml

from ..config import Config, to_dict


def run(cfg: Config) -> None:
    print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
