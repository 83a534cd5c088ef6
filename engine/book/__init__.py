"""The position book: lifecycle with audit trail, PnL in the account currency, metrics."""
