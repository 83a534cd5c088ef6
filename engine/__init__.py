"""riskrail: declarative position-management and portfolio-risk engine."""
