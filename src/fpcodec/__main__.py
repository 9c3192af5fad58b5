"""`python -m fpcodec`: the command line, for an interpreter without the script on PATH
(the benchmark times whole processes this way)."""

import sys

from fpcodec.cli import main

sys.exit(main())
