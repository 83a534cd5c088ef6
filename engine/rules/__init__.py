"""Rules: compile rule files to durable-rules rulesets, vectorised price kernels, evaluation."""
