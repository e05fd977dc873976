"""Smartphones as scanners: an HTTPS page with a camera decoder and a WebSocket.

:mod:`protocol` (pure: messages, origins, flood control), :mod:`registry` (paired phones,
a small JSON file), :mod:`certs` (the page's certificate), :mod:`server` (the reader).
"""
