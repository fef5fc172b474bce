"""Same as `dit-demo push-model` (dit_demo/cli/publish/push_model.py); needs `pip install -e .`."""

from dit_demo.cli.publish.push_model import main

raise SystemExit(main())
