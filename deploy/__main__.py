"""``python -m deploy`` is ``parcelstream``."""

from deploy.cli import main

main()
