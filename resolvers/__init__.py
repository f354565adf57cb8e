"""Resolvers: the thin layer between the schema and ``domain/`` (authorise the caller, decode ids,
call the domain, map its errors), grouped like ``domain/``, ``models/`` and ``schema/``.

- One module or package per bounded context, named after it: ``identity.py``, ``catalogue.py``,
  ``reviews.py``, ``messaging/``, ``providers/``, ``money/``, ``orders/``, ``bookings/``,
  ``operations/``. A context's resolvers are called by the same context of ``schema/``.
- At this top level only what every context uses and no feature owns: the request ``context``, the
  error mapping (``errors``: payload errors, ``bad_input``, ``write``), global ``ids``, page sizes
  (``pagination``), the per-request DataLoaders (``loaders``), rate limits (``ratelimit``), the
  resumable live streams (``live``) and the audit binding and denial records (``audit``).
"""
