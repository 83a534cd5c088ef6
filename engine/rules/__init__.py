"""Rules: the tick kernel, the durable-rules portfolio layer, and the evaluator that joins them.

Importing this package routes durable-rules' JSON through ``_durable_json`` (its parser refuses
floats in exponent notation, such as a profit of -5e-06), in this process and in the child processes
that test-compile rule sets.
"""

from engine.rules._durable_json import install as _install_durable_json

_install_durable_json()
