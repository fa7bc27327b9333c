"""The sender: sign, POST, record the attempt, then retry, finish or dead-letter."""
