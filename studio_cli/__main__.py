import sys

from studio_cli.cli import main

sys.exit(main())
