"""Same as `dit-demo deploy-space` (dit_demo/cli/publish/deploy_space.py); needs `pip install -e .`."""

from dit_demo.cli.publish.deploy_space import main

raise SystemExit(main())
