import sys

from dit_demo.cli.commands import main

sys.exit(main())
