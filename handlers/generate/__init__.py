"""Generation and selection: prompts, the image source, the regenerate-until-it-looks-like-you loop,
identity scoring, the writer thread and the records of every image."""
