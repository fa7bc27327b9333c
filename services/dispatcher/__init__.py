"""The dispatcher: one event in, one delivery task out per matching endpoint."""
