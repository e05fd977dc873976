"""Master data: products, lots (CSV import); holds and recalls."""
