"""``python -m clp_gpu.distill.task ARGS`` (for ``accelerate launch -m clp_gpu.distill.task``)."""

from . import main

raise SystemExit(main())
