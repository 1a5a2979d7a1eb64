"""The pipeline's steps, one module each, named after the step id (``validate-data`` →
``steps/validate_data.py`` → ``validate_data()``); ``step_table.STEPS`` lists them and a test holds
the two to each other. Each is a function of paths/URIs and typed config returning a plain result;
its component in ``components/`` maps KFP artifacts to it.

Steps compose the packages below them; nothing outside ``steps`` imports a step (DEVELOPERS.md,
held by ``tests/unit/test_layering.py``).
"""
