"""DreamBooth training with prior preservation: config, data, models, the loop, checkpoints, the result."""
