"""python -m bertbench: the benchmark, as the `bertbench` command."""

import sys

from bertbench.cli import main

sys.exit(main())
