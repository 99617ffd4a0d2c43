import sys

from rsb.sweep.cli import main

sys.exit(main())
