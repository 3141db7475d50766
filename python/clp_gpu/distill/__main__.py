"""``python -m clp_gpu.distill ...`` (and ``accelerate launch -m clp_gpu.distill ...``)."""

import sys

from . import main

sys.exit(main())
