"""The pack's filters, one module per concern. ``custodian_ext/__init__.py`` imports each."""
