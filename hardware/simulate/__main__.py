"""Entry point of ``python -m hardware.simulate``."""

from hardware.simulate.cli import main

raise SystemExit(main())
