"""Hand-engineered headshot prompts as data (found from a checkout and from an installed wheel)."""
