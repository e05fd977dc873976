"""The REST JSON API (FastAPI): bearer tokens with roles, trace/recall/stock answers,
holds, recalls and releases that are audited and pushed to the gateways."""
