"""`python -m dit_demo COMMAND ...`: the same dispatcher as the `dit-demo` console script."""

from dit_demo.cli.main import main

raise SystemExit(main())
