"""EPCIS 2.0 interfaces of central: the REST query (``GET /epcis/events``) and capture
(``POST /epcis/capture``) bindings, and the ``epcis-export`` / ``epcis-capture`` commands.

- :mod:`central.epcis.uris`: pure: EPC URIs, patterns and classes (EPC URN and GS1 Digital
  Link), CBV short names, location ids.
- :mod:`central.epcis.models`: pure: query parameters, page tokens, problem documents,
  a captured event normalised into items and lineage.
- :mod:`central.epcis.service`: the SQL (query, capture, capture jobs).
- :mod:`central.epcis.views`: the FastAPI router mounted by :mod:`central.api.app`.
- :mod:`central.epcis.cli`: ``traceway-central epcis-export`` and ``epcis-capture``.
"""
