"""Loss accounting shared by the gap detector and `essctl loss`: which slots reached
Kafka, the loss math of one window, and the window evaluation over both clusters.
"""
