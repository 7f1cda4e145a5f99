"""Dead letters for operators: ``storee dlq list``, ``show`` and ``replay`` (issue 15, part 2).

Pure parts: :mod:`ops.dlq.letters` (records of the DLQ topic as letters and replay markers, the letter
id), :mod:`ops.dlq.selection` (filters and time bounds), :mod:`ops.dlq.plan` (what a replay does and
what it refuses); the I/O shell: :mod:`ops.dlq.reader` (an assign-only reader), :mod:`ops.dlq.replayer`
(produces a plan), :mod:`ops.dlq.commands` (the CLI) with its rendering in :mod:`ops.dlq.table`.
"""
