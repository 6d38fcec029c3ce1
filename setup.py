"""The one thing pyproject.toml cannot say: the wheel carries the checkout's ``params.yaml`` as
``inpo/defaults/params.yaml``, so a non-editable install finds its defaults (``inpo.config.DEFAULT_PARAMS``)
without a second copy of them in the source tree."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithDefaultParams(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib, "inpo", "defaults", "params.yaml")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(__file__).parent / "params.yaml", target)


setup(cmdclass={"build_py": BuildWithDefaultParams})
