"""Money as Decimal: a request's cost under a model's prices (token prices, GPU hours), the monthly projection, and
the stored form of a price table (prices.py).

May import: safety, config.
"""
