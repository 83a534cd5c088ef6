"""Dry runs of a rule change: replay recorded history through the base and the proposed rules, and compare."""
