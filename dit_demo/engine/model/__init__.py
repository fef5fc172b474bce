"""Where a pipeline comes from and how it is stored: model sources (embedded digits, Hub ids, local folders,
random XL/2), loading into a `DiTPipeline`, the saved-folder format (quanto's weights + our metadata + the
`quantization_config` stock diffusers reads), atomic folder writes and class labels."""
