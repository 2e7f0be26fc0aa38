"""``python -m mtpkit``: the Python command line (:func:`mtpkit.cli.main`), as ``mtpkit-py``."""

import sys

from mtpkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
