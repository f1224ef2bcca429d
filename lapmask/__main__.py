"""``python -m lapmask`` (and ``torchrun -m lapmask train ...``)."""
import sys

from lapmask.cli import main

sys.exit(main())
