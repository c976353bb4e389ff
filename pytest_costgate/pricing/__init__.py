"""Money as Decimal: a request's cost under a model's prices (token prices, GPU hours), the monthly projection, and
the stored form of a price table (prices.py); the billed usage of one request, whatever the provider's
shape, and its split into the parts each price applies to (usage.py). Reading a `pricing:` node is config/prices.py's.

May import: safety, config, store.
"""
