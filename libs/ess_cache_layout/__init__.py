"""The cache's Redis layout, shared by the cache service (which writes it) and its
readers (`essctl cache`, the web side): the key schema, the measurements and
bucket resolutions, the bucket aggregates and their binary encoding, the
read-only client, and the settings a reader needs (the key prefix).

Imports no service.
"""
