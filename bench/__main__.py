import os
import sys

# Fixed string hashing: set iteration order (inside plotting libraries too) then no longer varies
# from run to run, so unchanged results redraw byte-identical plots.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, "-m", "bench", *sys.argv[1:]])

from .cli import main  # noqa: E402

sys.exit(main())
