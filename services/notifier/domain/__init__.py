"""The notifier's rules in plain Python: read-model merging, tokens, notifications and fan-out."""
