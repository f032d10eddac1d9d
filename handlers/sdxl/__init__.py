"""SDXL as the stages load it: component configs, ``from_pretrained`` loading, the CLIP tokenizer files."""
