"""The clusters' tables: schema and migrations, row codecs and the writer, presence
queries, cross-cluster sync, replay planning and execution.

Shared by the sink, the gap detector, the cache rebuild and `essctl`; imports
no service.
"""
