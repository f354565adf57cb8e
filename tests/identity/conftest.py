"""Identity tests: accounts, sign-in, refresh-token sessions, MFA and the WebSocket sign-in."""
