"""Catalogue tests: services, tiers and prices."""
