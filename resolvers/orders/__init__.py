"""Order resolvers: purchases and their tracking (``service_request``), contracts (``contract``) and
disputes (``dispute``); domain/orders/.

What every context uses (the request context, error mapping, ids, page sizes, DataLoaders, rate
limits, live streams, audit binding) is at the resolvers/ top level.
"""
