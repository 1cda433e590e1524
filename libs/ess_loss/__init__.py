"""Loss accounting shared by the gap detector and `essctl loss`: which slots reached
Kafka (`slots`, `kafka_scan`), the loss math (`lossmath`, pure) and the loss of one
window over the clusters (`window`, the clusters asked through a callable passed in).
"""
