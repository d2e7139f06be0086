"""Command-line interface: thin commands over the library functions.

Each module registers its commands on :data:`app`; heavy libraries are imported
inside the command bodies so that ``--help`` answers instantly.
"""

from __future__ import annotations

from mer_ensemble.cli import blend as _blend  # noqa: F401,E402
from mer_ensemble.cli import corrupt as _corrupt  # noqa: F401,E402
from mer_ensemble.cli import data as _data  # noqa: F401,E402
from mer_ensemble.cli import demo as _demo  # noqa: F401,E402
from mer_ensemble.cli import extract as _extract  # noqa: F401,E402
from mer_ensemble.cli import media as _media  # noqa: F401,E402
from mer_ensemble.cli import pseudo as _pseudo  # noqa: F401,E402
from mer_ensemble.cli import report as _report  # noqa: F401,E402
from mer_ensemble.cli import train as _train  # noqa: F401,E402
from mer_ensemble.cli import tune as _tune  # noqa: F401,E402
from mer_ensemble.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
