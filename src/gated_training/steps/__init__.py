"""The six pipeline steps, one module each, named after the step id (``validate-data`` →
``steps/validate_data.py`` → ``validate_data()``). Each is a function of paths/URIs and typed
config returning a plain result; its component in ``components/`` maps KFP artifacts to it.

Modules outside ``steps`` never import a step: shared logic lives below, in the library.
"""
