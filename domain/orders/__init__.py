"""Orders: purchase, the request state machine, guest access, contracts, disputes, payments and
reconciliation. Importing the package registers the ``purchase`` order kind (domain/orders/kinds.py)."""

from domain.orders import purchase  # noqa: F401  (registers the purchase order kind)
