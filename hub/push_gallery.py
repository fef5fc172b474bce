"""Same as `dit-demo push-gallery` (dit_demo/cli/push_gallery.py); needs the package installed: `pip install -e .`."""

from dit_demo.cli.push_gallery import main

raise SystemExit(main())
