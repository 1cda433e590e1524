"""The archive's object-store layout: what the archive writes and essctl/the gap detector read."""
