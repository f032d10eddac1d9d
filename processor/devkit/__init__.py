"""The dev kit: the embedded local AWS stack, the fault proxy, sample photos, the tiny model and the
settings profiles the demo, the tests and the benches share. Production never imports it
(the import contract in pyproject.toml checks that); its dependencies are the ``devkit`` extra."""
