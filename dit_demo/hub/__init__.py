"""Publishing on the Hugging Face Hub: a quantized model repo, a gallery dataset repo and the demo's Space.

`io` talks to the Hub (token checks, one-commit uploads, errors for people); `model_repo`, `dataset_repo` and
`space` write the folders and publish them; `card` (with its template text in `card_text`) writes and validates
the measured model card. The command-line flags live in `dit_demo.cli.publish.push_model`,
`push_gallery` and `deploy_space`.
"""
