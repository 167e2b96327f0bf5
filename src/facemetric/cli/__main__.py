import sys

from facemetric.cli import main

sys.exit(main())
