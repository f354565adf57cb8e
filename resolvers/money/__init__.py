"""Money resolvers: the fee preview (``fees``), an order's receipt, settlement and refunds
(``refunds``), the ledger's trial balance and affiliate totals (``ledger``) and provider payouts
(``payout``); domain/money/."""
