"""Order resolvers: purchases and their tracking (``service_request``), contracts (``contract``) and
disputes (``dispute``); domain/orders/."""
