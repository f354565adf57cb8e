"""Provider resolvers: profiles, geosearch and verification (``provider``), ranked discovery
(``discovery``), onboarding applications (``onboarding``) and standing under the two-strike policy
(``standing``); domain/providers/.

What every context uses (the request context, error mapping, ids, page sizes, DataLoaders, rate
limits, live streams, audit binding) is at the resolvers/ top level.
"""
