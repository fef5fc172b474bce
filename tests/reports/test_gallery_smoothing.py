"""int8-a8-smooth through the gallery (the same checks as the other recipes' tiny gallery)."""

from __future__ import annotations

import json

from test_gallery_run import TINY_ARGS, check_gallery_files

import dit_demo.cli.gallery as gallery_cli


def test_tiny_gallery_with_the_smoothed_recipe(tmp_path):
    args = list(TINY_ARGS)
    args[args.index("--recipes") + 1] = "bf16,int8-a8-smooth"
    out = tmp_path / "smooth"
    assert gallery_cli.main([*args, "--out", str(out)]) == 0
    data = check_gallery_files(out, ["bf16", "int8-a8-smooth"], digits=False)
    row = data["recipes"]["int8-a8-smooth"]
    assert row["psnr_db"] is not None and row["checkpoint_bytes"] > 0
    assert "int8-a8-smooth" in json.dumps(data["config"])
