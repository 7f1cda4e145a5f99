"""Faust stream processors: split, batch, route tiers, materialize the job view.

A module's name says which side of STYLE.md's habit 4 it is on:

* pure logic (values in, values out; fast unit tests) is named for what it computes: ``splitting``,
  ``batching``, ``expiry``, ``stalls``, ``view`` (with ``view_doc``, its documents, and ``view_facts``,
  what it is reduced from), ``view_cache``, ``entries``, ``rejections``, ``event_ids``, ``dead_letters``;
* an I/O shell (decode, call the logic, produce, commit; integration tests on the real broker) is
  named for what runs it: ``*_agent`` is handed records or ticks by an agent or timer of the Faust app
  (``split_agent``, ``batch_agent``, ``stall_agent``); ``*_loop`` is a blocking loop in a thread beside
  the app (``view_loop``, the materializer; ``sweep_loop``, the deadline sweeper; ``webhook_loop``,
  the webhook intake; ``webhook_send_loop``, the webhook sender's asyncio loop);
* an adapter to a server is named for it or its role: ``view_store`` and ``webhook_store`` (MongoDB),
  ``outlet`` and ``transport`` (Kafka);
* the wiring: ``app`` (:func:`streams.app.build_app`), ``services``, ``commands``, ``settings``,
  ``metrics``, ``exceptions``; the webhook delivery service's ``webhook_service``, ``webhook_settings``,
  ``webhook_metrics``.
"""
