"""Same as `dit-demo deploy-space` (dit_demo/cli/deploy_space.py); needs the package installed: `pip install -e .`."""

from dit_demo.cli.deploy_space import main

raise SystemExit(main())
