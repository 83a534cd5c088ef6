"""The routes of the HTTP API, one router per concept; ``engine.service.api.create_app`` assembles them.

- ``context``: what every router shares (the token check, the account lookup, the engine call, the thread limits);
- ``health``: ``/healthz``, ``/readyz`` and ``/metrics``;
- ``status``: the risk status, the portfolio summary and the optimizer's results of an account;
- ``trading``: the trading states (the kill switch) and flatten;
- ``positions``: list, read and propose positions;
- ``actions``: the account's emitted actions, page by page;
- ``rules``: the active rules, and validate, reload and dry-run (plan) rule files;
- ``jobs``: run a scheduled job now;
- ``stream``: an account's live state as server-sent events, for the dashboard;
- ``dashboard``: the static dashboard page, its script and style, under a strict Content-Security-Policy.
"""
