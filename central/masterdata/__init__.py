"""Master data (products, lots, serials, despatch advices), holds and recalls, and their push
to the gateways over the cache-sync contract."""
