"""Names vulture cannot see being used; `vulture` reads this file with `engine` (see [tool.vulture]).

Each entry is used from outside the package's own code: by name through a framework, a protocol, a
caller of a public API, or a real package the code mirrors. Dead code is deleted, not listed here.
"""

from typing import Any

_: Any = None

_allowed = (
    # engine/__init__.py: module __getattr__ and __dir__ (PEP 562), called by the import system
    _.__getattr__,
    _.__dir__,
    # pydantic: model_config is read by the metaclass; validators are registered by their decorators
    _.model_config,
    _._distance_when_enabled,
    _._one_trigger,
    _._horizon_stated,
    _._shorthands,
    _._exactly_one,
    _._known_timezone,
    _._unique_sessions,
    _._trigger_fields,
    _._ask_not_below_bid,
    _._address,  # engine/config/models/alerts.py
    # engine/config/models.py: fields of the rule files' models, read by name when a YAML file is validated
    _.weekly_growth_target,
    _.critical,  # alerts.yaml routes, read by level name (Routes.of)
    _.close_all,
    _.set_stop_loss,
    _.set_take_profit,
    _.halt_new_positions,
    _.resume,
    _.reject_position,
    _.rebalance,
    _.pip_size,
    _.comment_prefix,
    _.weeks,
    _.days,
    _.hours,
    _.minutes,
    _.year,
    _.month,
    _.week,
    _.day_of_week,
    _.second,
    _.optimize_portfolio,
    _.snapshot_metrics,
    # engine/service/api.py: FastAPI route and exception handlers, registered by their decorators
    _._riskrail_error,
    _._redis_error,
    _.healthz,
    _.readyz,
    _.optimization_results,
    _.reconciliation,
    _.accept_rebalance,
    _.list_positions,
    _.get_position,
    _.validate,
    _.rules_plan,
    _.get_trading_state,
    _.set_trading_state,
    _.run_job,
    _.dashboard,
    _.asset,
    _.stream,
    # engine/service/scheduler.py: job bodies looked up as getattr(self, f"_{name}")
    _._optimize_portfolio,
    _._snapshot_metrics,
    _._request_positions,
    _._risk_update,
    # engine/service/metrics.py: a prometheus_client Collector's method, called by the registry
    _.collect,
    # uvicorn.Server attributes set to configure or stop the server
    _.should_exit,
    _.timeout_keep_alive_task,
    # a signal handler's signature (engine/cli/run.py)
    _.signum,
    _.frame,
    # engine/rules/volatility.py: the (windows, values) form SymbolBook.on_tick takes, for its callers and tests
    _.arrays,
    # engine/book/ledgers.py: a profit-locking bucket, reported through vars(ledger) in the summary
    _.week_realized,
    # engine/adapters/mt5/feed.py: a documented method of the public adapter (docs/mt5.md), for its callers
    _.day_pnl,
    # engine/testing/mt5.py, the importable fake terminal: the test-facing controls of the fake
    _.add_symbol,
    _.feed_ticks,
    _.close_position,
    _.script_order_send,
    _.go_away,
    _.deals_of,
    # ...its MetaTrader5-shaped functions (and their parameters), called by the adapter through the module
    _.initialize,
    _.portable,
    _.copy_ticks_range,
    _.positions_total,
    _.positions_get,
    _.history_deals_get,
    _.order_send,
    _.__doc__,
    # ...the MetaTrader5 package's constants, mirrored whole so code written against the real package runs
    _.TRADE_ACTION_PENDING, _.TRADE_ACTION_MODIFY, _.TRADE_ACTION_REMOVE, _.TRADE_ACTION_CLOSE_BY, _.ORDER_FILLING_BOC,
    _.POSITION_REASON_MOBILE, _.POSITION_REASON_WEB, _.DEAL_TYPE_BALANCE, _.DEAL_ENTRY_INOUT, _.DEAL_REASON_MOBILE,
    _.DEAL_REASON_WEB, _.SYMBOL_TRADE_MODE_LONGONLY, _.SYMBOL_TRADE_MODE_SHORTONLY, _.SYMBOL_TRADE_EXECUTION_REQUEST,
    _.SYMBOL_TRADE_EXECUTION_INSTANT, _.SYMBOL_TRADE_EXECUTION_EXCHANGE, _.ACCOUNT_TRADE_MODE_CONTEST,
    _.ACCOUNT_TRADE_MODE_REAL, _.ACCOUNT_MARGIN_MODE_EXCHANGE, _.COPY_TICKS_INFO, _.COPY_TICKS_TRADE,
    _.TRADE_RETCODE_CANCEL, _.TRADE_RETCODE_PLACED, _.TRADE_RETCODE_ERROR, _.TRADE_RETCODE_INVALID_PRICE,
    _.TRADE_RETCODE_NO_MONEY, _.TRADE_RETCODE_INVALID_EXPIRATION, _.TRADE_RETCODE_ORDER_CHANGED,
    _.TRADE_RETCODE_TOO_MANY_REQUESTS, _.TRADE_RETCODE_SERVER_DISABLES_AT, _.TRADE_RETCODE_LOCKED,
    _.TRADE_RETCODE_CONNECTION, _.TRADE_RETCODE_ONLY_REAL, _.TRADE_RETCODE_LIMIT_ORDERS, _.TRADE_RETCODE_LIMIT_VOLUME,
    _.TRADE_RETCODE_INVALID_ORDER, _.TRADE_RETCODE_CLOSE_ORDER_EXIST, _.TRADE_RETCODE_LIMIT_POSITIONS, _.RES_E_FAIL,
    _.RES_E_INTERNAL_FAIL, _.RES_E_INTERNAL_FAIL_SEND, _.RES_E_INTERNAL_FAIL_RECEIVE,
    # ...and the fields of its records (TradePosition, TradeDeal, TradeRequest, AccountInfo, TerminalInfo)
    _.volume_real, _.time_update, _.identifier, _.external_id, _.stoplimit, _.type_filling, _.type_time,
    _.expiration, _.position_by, _.request_id, _.retcode_external, _.leverage, _.limit_orders, _.margin_so_mode,
    _.currency_digits, _.fifo_close, _.credit, _.margin_free, _.margin_level, _.margin_so_call, _.margin_so_so,
    _.margin_initial, _.margin_maintenance, _.assets, _.liabilities, _.commission_blocked, _.company,
    _.community_account, _.community_connection, _.dlls_allowed, _.email_enabled, _.ftp_enabled,
    _.notifications_enabled, _.mqid, _.maxbars, _.codepage, _.ping_last, _.community_balance, _.retransmission,
    _.language, _.data_path, _.commondata_path,
    # engine/config/_errors.py: a key of the LocatedError TypedDict, read as entry["subpath"]
    _.subpath,
    # engine/testing/mt5.py: the fields of the fake's SymbolInfo, the package's own record, in its order
    _.chart_mode, _.session_deals, _.session_buy_orders, _.session_sell_orders, _.volumehigh, _.volumelow,
    _.spread_float, _.ticks_bookdepth, _.trade_calc_mode, _.start_time, _.expiration_time, _.trade_exemode,
    _.swap_mode, _.swap_rollover3days, _.margin_hedged_use_leg, _.expiration_mode, _.order_mode, _.order_gtc_mode,
    _.option_mode, _.option_right, _.bidhigh, _.bidlow, _.askhigh, _.asklow, _.lasthigh, _.lastlow,
    _.volumehigh_real, _.volumelow_real, _.option_strike, _.trade_tick_value, _.trade_tick_value_profit,
    _.trade_tick_value_loss, _.trade_tick_size, _.trade_accrued_interest, _.trade_face_value,
    _.trade_liquidity_rate, _.volume_limit, _.swap_long, _.swap_short, _.session_volume, _.session_turnover,
    _.session_interest, _.session_buy_orders_volume, _.session_sell_orders_volume, _.session_open, _.session_close,
    _.session_aw, _.session_price_settlement, _.session_price_limit_min, _.session_price_limit_max, _.margin_hedged,
    _.price_change, _.price_volatility, _.price_theoretical, _.price_greeks_delta, _.price_greeks_theta,
    _.price_greeks_gamma, _.price_greeks_vega, _.price_greeks_rho, _.price_greeks_omega, _.price_sensitivity,
    _.basis, _.category, _.currency_margin, _.bank, _.exchange, _.formula,
    # Service.last_reload: the last reload attempt, for embedding programs and the reload tests
    _.last_reload,
    # durable-rules' Host calls get_action(name) to find a rule's action (engine/rules/chaining.py)
    _.get_action,
    # the public API of Coordinator (engine/service/coordinator.py), documented there and in docs/api.md
    _.from_config,
    _.add_position,
    # SymbolBook.on_tick: the kernel's one-quote entry point, which the differential kernel tests drive
    # (the engine calls on_quote, which also advances volatility)
    _.on_tick,
    # PortfolioRules.pending_events: durable-rules' queue of a version, which the tests check is drained
    _.pending_events,
    # rules/allocation.yaml consensus.resample: validated and documented; the optimizer does not read it yet
    _.resample,
    # engine/config/lint.py: the reload guard for removed strategies with open positions; tested, and
    # not yet called by the reload path
    _.check_removed_strategies,
    # PortfolioRules.post_position / post_portfolio: one context of one scope, as the chaining tests post
    _.post_position,
    _.post_portfolio,
    # pydantic model serializers (rules/custom.yaml keeps its rules version without the fact actions)
    _._dump,
    # Action.assert_: the `assert` action of rules/custom.yaml (a Python keyword), read through its alias
    _.assert_,
)
