"""The product's rules, with no I/O: plans, event types, retry policies, envelopes,
signatures, ids, masking. Imports nothing of hookpost outside this package."""
