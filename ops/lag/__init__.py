"""Consumer lag: offsets, seconds, status and an exporter, for Storee's groups and any other.

The model (:mod:`ops.lag.model`), the roll-ups (:mod:`ops.lag.rollup`) and the status rules
(:mod:`ops.lag.status`) are pure; :mod:`ops.lag.reader` is the thin Kafka shell that reads one
observation, :mod:`ops.lag.monitor` keeps the windows between observations and builds the
:class:`~ops.lag.snapshot.LagSnapshot` that ``storee lag`` (table and ``--json``) and the Prometheus
exporter (:mod:`ops.lag.exporter`) both render.
"""
