"""Same as `dit-demo push-model` (dit_demo/cli/push_model.py); needs the package installed: `pip install -e .`."""

from dit_demo.cli.push_model import main

raise SystemExit(main())
