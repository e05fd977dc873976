"""FSMA 204: the electronic sortable spreadsheet of receiving, shipping and transformation KDEs.

``model`` (TLCs, event lines, master data) and ``build`` (the rows) are pure; ``queries``
reads the database; ``render`` writes XLSX and CSV; ``cli`` is ``traceway-central fsma204``.
"""
