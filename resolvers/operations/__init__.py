"""Operations resolvers (admins, and customers for their own data): dead letters (``dead_letters``),
reconciliation (``reconciliation``), financial reports (``reports``), data export and erasure
(``privacy``), the streamed CSV exports (``exports``) and the audit log (``audit_log``);
domain/operations/.

What every context uses (the request context, error mapping, ids, page sizes, DataLoaders, rate
limits, live streams, audit binding) is at the resolvers/ top level.
"""
