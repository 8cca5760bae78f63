"""python -m launcher: the same as the dtrain-run command."""
import sys

from .cli import main

sys.exit(main())
