"""Money resolvers: the fee preview (``fees``), an order's receipt, settlement and refunds
(``refunds``), the ledger's trial balance and affiliate totals (``ledger``) and provider payouts
(``payout``); domain/money/.

What every context uses (the request context, error mapping, ids, page sizes, DataLoaders, rate
limits, live streams, audit binding) is at the resolvers/ top level.
"""
