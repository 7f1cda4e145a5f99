"""``storee view``: rebuild the job view beside the live one, verify it, swap readers to it, roll back.

``digest`` compares two generations (pure), ``generations`` is the pointer and the collections in
MongoDB, ``shadow`` runs a materializer of its own into a new generation, ``rebuild`` is the whole
rebuild (build, catch up, verify, swap), ``commands`` is the CLI.
"""
