"""``storee replay``: reset a Storee stage's (or any group's) offsets, as a plan first.

``spec`` parses what the operator asked for, ``plan`` computes the plan (pure), ``stages`` says which
group and topics a stage is and what a replay of it redoes, ``reader`` is the thin Kafka shell (read
the group, the logs and record timestamps; apply), ``table`` renders, ``commands`` is the CLI.
"""
