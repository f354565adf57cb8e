"""Messaging resolvers: chat (``chat``), the in-app notification feed (``feed``) and email
preferences, the email log and the unsubscribe endpoint (``email``); domain/messaging/.

What every context uses (the request context, error mapping, ids, page sizes, DataLoaders, rate
limits, live streams, audit binding) is at the resolvers/ top level.
"""
