"""The commands that share on the Hugging Face Hub: `push-model`, `push-gallery` and `deploy-space` (each writes its
folder as a dry run; `--push` uploads it). The hub/*.py scripts are three-line wrappers around them."""
