"""Every released schema, one self-contained ``<Name>.<fingerprint>.avsc`` each; never edit or delete one.

Readers need the writer's schema to decode a message, so the registry loads these as known writers and
tests check that the current schemas can read data written with each. Add the current schemas here with
``python -m ops.schema_history snapshot`` before a release (a test fails until they are here).
"""
