"""`python -m i2v_cli`: the `i2v` command without the installed script."""

import sys

from i2v_cli import main

sys.exit(main())
