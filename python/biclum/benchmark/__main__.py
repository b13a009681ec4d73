"""``python -m biclum.benchmark --worker JOB.json``: one run in a child process (see :mod:`.harness`); with any
other arguments, ``biclum benchmark``."""
import sys

from .cli import main_benchmark
from .harness import _worker

if len(sys.argv) == 3 and sys.argv[1] == "--worker":
    sys.exit(_worker(sys.argv[2]))
sys.exit(main_benchmark())
