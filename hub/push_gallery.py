"""Same as `dit-demo push-gallery` (dit_demo/cli/publish/push_gallery.py); needs `pip install -e .`."""

from dit_demo.cli.publish.push_gallery import main

raise SystemExit(main())
