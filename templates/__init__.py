"""Jinja2 email templates (data package: found from a checkout and from an installed wheel)."""
