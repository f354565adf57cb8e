"""Messaging resolvers: chat (``chat``), the in-app notification feed (``feed``) and email
preferences, the email log and the unsubscribe endpoint (``email``); domain/messaging/."""
