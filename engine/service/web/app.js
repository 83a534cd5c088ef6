// riskrail dashboard. The page holds no data: everything comes from the API with the bearer token the
// user types in (kept in this tab's sessionStorage, sent only in the Authorization header). Live state
// arrives over GET /api/stream (server-sent events read with fetch, since EventSource cannot send a header).
// Every value is rendered as a text node (textContent, createElement): never as HTML.
"use strict";

(() => {
  const TOKEN_KEY = "riskrail-token", ACCOUNT_KEY = "riskrail-account";
  const PAGE = 50, MAX_POINTS = 7200, STALE_MS = 40000;
  const $ = (id) => document.getElementById(id);
  const S = {
    token: sessionStorage.getItem(TOKEN_KEY) || "", account: sessionStorage.getItem(ACCOUNT_KEY) || "",
    ctrl: null, lastMessage: 0, summary: null, tradingState: null, rulesBad: false,
    live: [], pages: [], newCount: 0,   // actions: the live page, the older pages shown, new ones while away
    eq: [[], []], pnl: [[], [], []], charts: {},
  };

  // --- rendering helpers: text only ------------------------------------------------------------------
  function el(tag, cls, ...children) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  function setText(id, value, cls) { const e = $(id); e.textContent = value; if (cls !== undefined) e.className = cls; }
  function table(id, head, rows, empty) {
    const t = $(id), thead = el("thead"), tbody = el("tbody"), tr = el("tr");
    head.forEach((h) => tr.append(el("th", typeof h === "object" ? h.cls : "", typeof h === "object" ? h.t : h)));
    thead.append(tr);
    if (!rows.length) { const r = el("tr"); const td = el("td", "empty", empty || "none"); td.colSpan = head.length; r.append(td); tbody.append(r); }
    for (const row of rows) {
      const r = el("tr");
      for (const c of row) r.append(c instanceof Node && c.tagName === "TD" ? c : el("td", "", c));
      tbody.append(r);
    }
    t.replaceChildren(thead, tbody);
  }
  const td = (cls, ...c) => el("td", cls, ...c);
  const num = (x, d = 2) => (x === null || x === undefined || !isFinite(x) ? "—" : Number(x).toLocaleString("en-US", {minimumFractionDigits: d, maximumFractionDigits: d}));
  const pct = (x, d = 1) => (x === null || x === undefined || !isFinite(x) ? "—" : (100 * x).toFixed(d) + " %");
  const signCls = (x) => (x > 0 ? "pos" : x < 0 ? "neg" : "");
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  function utc(ms, withDate = true) {  // times are shown in UTC, and say so
    if (ms === null || ms === undefined || !isFinite(ms)) return "—";
    const d = new Date(ms);
    const t = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
    return (withDate ? `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` : "") + t + " UTC";
  }
  function priceDigits(p) { return p && p.instrument && Number.isInteger(p.instrument.digits) ? p.instrument.digits : 5; }
  function badge(id, text, cls) { const b = $(id); b.textContent = text; b.className = "badge " + (cls || ""); }

  // --- the API ------------------------------------------------------------------------------------------
  function url(path, params) {
    const q = new URLSearchParams(params || {});
    if (S.account) q.set("account", S.account);
    const s = q.toString();
    return path + (s ? "?" + s : "");
  }
  function headers(json) {
    const h = {Authorization: "Bearer " + S.token};
    if (json) h["Content-Type"] = "application/json";
    return h;
  }
  async function detail(r) {
    try { const b = await r.json(); const d = b.detail; return typeof d === "string" ? d : JSON.stringify(d); } catch (e) { return r.statusText; }
  }
  async function call(method, path, params, body) {
    const r = await fetch(url(path, params), {method, headers: headers(body !== undefined), cache: "no-store",
                                               body: body === undefined ? undefined : JSON.stringify(body)});
    if (r.status === 401) { signOut("the token was refused: " + await detail(r)); throw new Error("token refused"); }
    return r;
  }

  // --- sign in ------------------------------------------------------------------------------------------
  function signOut(message) {
    if (S.ctrl) S.ctrl.abort();
    S.token = ""; sessionStorage.removeItem(TOKEN_KEY);
    $("board").hidden = true; $("login").hidden = false; $("logout").hidden = true;
    setText("login-error", message || "");
    badge("conn-badge", "not connected");
  }
  function signIn() {
    S.token = $("token").value.trim(); S.account = $("account-input").value.trim();
    if (!S.token) { setText("login-error", "paste the API token first"); return; }
    sessionStorage.setItem(TOKEN_KEY, S.token); sessionStorage.setItem(ACCOUNT_KEY, S.account);
    $("token").value = "";
    start();
  }
  function start() {
    $("login").hidden = true; $("board").hidden = false; $("logout").hidden = false;
    setText("account", S.account ? "· " + S.account : "");
    connect();
    refreshTradingState();
  }

  // --- the live stream -------------------------------------------------------------------------------
  async function connect() {
    if (S.ctrl) S.ctrl.abort();
    const ctrl = new AbortController(); S.ctrl = ctrl;
    badge("conn-badge", "connecting", "warn");
    try {
      const r = await fetch(url("/api/stream"), {headers: headers(false), signal: ctrl.signal, cache: "no-store"});
      if (r.status === 401) { signOut("the token was refused: " + await detail(r)); return; }
      if (!r.ok) throw new Error(`the stream answered ${r.status}: ${await detail(r)}`);
      badge("conn-badge", "live", "ok");
      const reader = r.body.getReader(), dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        S.lastMessage = Date.now();
        buf += dec.decode(value, {stream: true});
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) { dispatch(buf.slice(0, i)); buf = buf.slice(i + 2); }
      }
      if (ctrl.signal.aborted) return;
      showProblem("the live stream ended; reconnecting");
    } catch (e) {
      if (ctrl.signal.aborted) return;
      showProblem("live stream: " + e.message + "; reconnecting");
    }
    badge("conn-badge", "reconnecting", "bad");
    setTimeout(() => { if (S.ctrl === ctrl && S.token) connect(); }, 3000);
  }
  function dispatch(block) {
    let name = "message", data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trim();
    }
    if (!data) return;
    let msg;
    try { msg = JSON.parse(data); } catch (e) { return; }
    const fn = HANDLERS[name];
    if (fn) { try { fn(msg); } catch (e) { showProblem(`showing ${name}: ${e.message}`); } }
  }
  function showProblem(text) { const p = $("problem"); p.hidden = !text; p.textContent = text || ""; }
  setInterval(() => {
    if (S.token && S.lastMessage && Date.now() - S.lastMessage > STALE_MS) badge("conn-badge", "stale: no data for " + Math.round((Date.now() - S.lastMessage) / 1000) + " s", "bad");
  }, 5000);

  const HANDLERS = {
    summary: onSummary, positions: (m) => renderPositions(m.positions), allocations: (m) => renderAllocations(m.allocations),
    rules: renderRules, optimization: renderOptimization, actions: onActions, history: onHistory,
    problem: (m) => showProblem(m.message ? "the service: " + m.message : ""),
  };

  // --- summary and charts ----------------------------------------------------------------------------
  function onSummary(s) {
    const prev = S.summary; S.summary = s;
    const d = s.day || {};
    setText("k-equity", num(s.equity));
    setText("k-day", num(d.pnl), "value " + signCls(d.pnl));
    setText("k-day-pct", `${pct(d.pnl_pct, 2)} of ${num(d.start_equity)} · limit −${pct(d.limit, 1)}` + (d.breached ? " · BREACHED" : ""));
    const used = d.limit ? Math.max(0, -d.pnl_pct) / d.limit : 0;
    const m = $("k-day-meter"); m.style.width = Math.min(100, 100 * used).toFixed(1) + "%"; m.className = used >= 1 ? "bad" : used >= 0.5 ? "warn" : "";
    setText("k-unrealized", num(s.unrealized), "value " + signCls(s.unrealized));
    setText("k-open", s.open_positions);
    setText("k-events", num(s.events, 0));
    setText("k-updated", "at " + utc(s.at, false));
    if (!prev || prev.halted !== s.halted) refreshTradingState();
    renderTradingBadge();
    addPoint(s.at / 1000, s.equity, d.pnl, d.limit && d.start_equity ? -d.limit * d.start_equity : null);
  }
  function onHistory(m) {  // the snapshots before this page connected, in front of what it has drawn since
    const limit = S.summary && S.summary.day ? S.summary.day.limit : null;
    const first = S.eq[0].length ? S.eq[0][0] : Infinity;
    const eq = [[], []], pnl = [[], [], []];
    for (const [ts, equity, start] of m.samples || []) {
      if (!(ts / 1000 < first)) continue;
      eq[0].push(ts / 1000); eq[1].push(equity);
      pnl[0].push(ts / 1000); pnl[1].push(start === null ? null : equity - start); pnl[2].push(limit && start ? -limit * start : null);
    }
    S.eq = S.eq.map((a, i) => [...eq[i], ...a]); S.pnl = S.pnl.map((a, i) => [...pnl[i], ...a]);
    drawCharts();
  }
  function addPoint(t, equity, pnl, limitLine) {
    const last = S.eq[0].length ? S.eq[0][S.eq[0].length - 1] : -Infinity;
    if (!(t > last)) return;
    S.eq[0].push(t); S.eq[1].push(equity);
    S.pnl[0].push(t); S.pnl[1].push(pnl); S.pnl[2].push(limitLine);
    for (const a of [...S.eq, ...S.pnl]) if (a.length > MAX_POINTS) a.splice(0, a.length - MAX_POINTS);
    drawCharts();
  }
  function chartSize(box) { return {width: Math.max(200, box.clientWidth), height: box.clientWidth < 500 ? 180 : 220}; }
  function makeChart(id, series, data) {  // a uPlot time chart in UTC that follows its box's width
    const box = $(id);
    const axisTime = {label: "UTC", labelSize: 14, space: 80, values: (u, splits) => {  // 24-hour UTC, as fine as the span needs
      const span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
      return splits.map((v) => {
        const d = new Date(v * 1000), hm = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
        return span < 600 ? `${hm}:${pad(d.getUTCSeconds())}` : span < 2 * 86400 ? hm : `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${hm}`;
      });
    }};
    const opts = {...chartSize(box), tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"), legend: {live: false},
                  cursor: {drag: {x: false, y: false}},
                  scales: {x: {time: true, range: (u, lo, hi) => (u.data[0].length === 1 ? [u.data[0][0] - 60, u.data[0][0] + 60] : [lo, hi])},  // one sample: two minutes
                           y: {range: (u, lo, hi) => (lo === hi ? [lo - 1, hi + 1] : uPlot.rangeNum(lo, hi, 0.1, true))}},
                  axes: [axisTime, {size: (u, values) => (values ? 14 + 7.5 * Math.max(0, ...values.map((v) => String(v).length)) : 60), values: (u, splits) => splits.map((v) => num(v, splits.length > 1 && Math.abs(splits[1] - splits[0]) < 5 ? 2 : 0))}],
                  series: [{value: (u, v) => utc(v * 1000, false)}, ...series]};
    const chart = new uPlot(opts, data, box);
    new ResizeObserver(() => chart.setSize(chartSize(box))).observe(box);
    return chart;
  }
  function drawCharts() {
    if (typeof uPlot === "undefined") return;
    if (!S.charts.eq) {
      S.charts.eq = makeChart("chart-equity", [{label: "equity", stroke: "#2f5bd3", width: 1.5, fill: "rgba(47,91,211,0.08)", points: {show: false}}], S.eq);
      S.charts.pnl = makeChart("chart-pnl", [{label: "day PnL", stroke: "#0f7b3f", width: 1.5, points: {show: false}},
                                             {label: "daily limit", stroke: "#b42318", width: 1, dash: [6, 4], points: {show: false}}], S.pnl);
      return;
    }
    S.charts.eq.setData(S.eq); S.charts.pnl.setData(S.pnl);
  }

  // --- positions, allocations, optimizer ----------------------------------------------------------------
  function renderPositions(list) {
    table("positions", ["id", {t: "symbol", cls: "text"}, {t: "strategy", cls: "text"}, "side", "volume", "entry", "price", "PnL", "stop",
                        "target", {t: "trailing", cls: "text"}, {t: "exit levels", cls: "text"}],
      list.map((p) => {
        const dg = priceDigits(p), t = p.trailing || {};
        const trailing = !t.enabled ? "off" : t.armed ? `armed · best ${num(t.best_price, dg)}` + (t.moved ? " · moved" : "")
          : `arms at ${num(t.activation_price, dg)}`;
        const ladder = el("div", "ladder");
        let nextSeen = false;
        (p.ladder || []).forEach((l, j) => {
          const next = !l.taken && !nextSeen; if (next) nextSeen = true;
          const chip = el("span", "lvl" + (l.taken ? " taken" : "") + (next ? " next" : ""), `L${j + 1} ${num(l.price, dg)} · ${pct(l.exit_percentage, 0)}`);
          chip.title = (l.taken ? "taken" : "not taken") + (l.stop_to !== null && l.stop_to !== undefined ? `; stop to ${num(l.stop_to, dg)}` : "");
          ladder.append(chip);
        });
        return [td("text", p.id), td("text", p.symbol), td("text", p.strategy_type, p.strategy_name ? el("div", "muted", p.strategy_name) : null),
                td("side-" + p.action, p.action), `${num(p.volume, 2)} / ${num(p.volume0, 2)}`, num(p.entry_price, dg), num(p.price, dg),
                td(signCls(p.unrealized_pnl), num(p.unrealized_pnl)), num(p.stop_loss, dg), num(p.take_profit, dg), td("text", trailing),
                td("text", (p.ladder || []).length ? ladder : "none")];
      }), "no open positions");
  }
  function band(a, scale) {
    const b = el("div", "band"), pos = (x) => Math.max(0, Math.min(100, 100 * x / scale)).toFixed(2) + "%";
    const range = el("div", "range"); range.style.left = pos(a.min); range.style.width = (parseFloat(pos(a.max)) - parseFloat(pos(a.min))).toFixed(2) + "%";
    const target = el("div", "target"); target.style.left = pos(a.target);
    b.append(range, target);
    if (a.current !== null && a.current !== undefined) {
      const cur = el("div", "current" + (a.current < a.min || a.current > a.max ? " out" : "")); cur.style.left = pos(a.current); b.append(cur);
    }
    b.title = `current ${pct(a.current)}; band ${pct(a.min, 0)} to ${pct(a.max, 0)}, target ${pct(a.target)}`;
    return b;
  }
  function renderAllocations(allocs) {
    const entries = Object.entries(allocs || {});
    const scale = Math.max(0.01, ...entries.map(([, a]) => Math.max(a.max || 0, a.current || 0))) * 1.1;
    const util = entries.some(([, a]) => a.utilization !== undefined);
    const head = [{t: "strategy", cls: "text"}, "current", "target", "band", {t: "", cls: "text"}, "equity", "open"];
    if (util) head.splice(5, 0, "utilization");
    table("alloc", head, entries.map(([name, a]) => {
      const out = a.current !== null && (a.current < a.min || a.current > a.max);
      const row = [td("text", name), td(out ? "bad" : "", pct(a.current)), pct(a.target), `${pct(a.min, 0)} – ${pct(a.max, 0)}`,
                   td("text", band(a, scale)), num(a.equity), a.open_positions];
      if (util) row.splice(5, 0, typeof a.utilization === "number" ? pct(a.utilization) : JSON.stringify(a.utilization));
      return row;
    }), "no strategies");
  }
  function renderOptimization(o) {
    const status = o.status === "none yet" ? "no run yet" : o.error ? "failed" : `run at ${utc(o.ts)} · ${o.observations} observations`;
    setText("o-status", status);
    setText("o-error", o.error || o.last_error ? "last run failed: " + (o.error || o.last_error) : "");
    const recs = o.recommendations || [];
    table("o-targets", [{t: "strategy", cls: "text"}, "current", "target", "drift", "threshold", {t: "action", cls: "text"}, "priority"],
      recs.map((r) => [td("text", r.strategy), pct(r.current), pct(r.target), pct(r.drift, 2), pct(r.threshold, 1), td("text", r.action), r.priority]),
      o.status === "none yet" ? "the optimizer has not run yet" : "no recommendations");
    const plan = $("o-plan");
    plan.replaceChildren(...(o.implementation_plan || []).map((s) => el("li", "", `step ${s.step}: ${pct(s.amount, 2)} (${num(s.amount_equity)}) from ${s.from} to ${s.to}`)));
    if (!plan.children.length) plan.append(el("li", "muted none", "no transfers"));
    const imp = o.expected_impact;
    table("o-impact", [{t: "expected", cls: "text"}, "return", "volatility", "Sharpe"], imp ? ["before", "after"].map((k) => [
      td("text", k), pct(imp[k].expected_return, 2), pct(imp[k].volatility, 2), num(imp[k].sharpe, 2)]) : [], "no expected impact yet");
  }

  // --- rules ----------------------------------------------------------------------------------------------
  function renderRules(r) {
    const last = r.last_reload;
    setText("r-version", r.version);
    setText("r-loaded", r.loaded_at ? utc(r.loaded_at * 1000) : "—");
    const refused = !!last && !last.ok;
    setText("r-last", !last ? "none since start" : `${last.ok ? "ok" : "REFUSED"} · ${last.trigger} · ${utc(last.at * 1000)}` +
            (last.ok ? (last.changed ? ` · ${last.previous} → ${last.version}` : " · no change") : ` · ${r.version} stays active`),
            refused ? "bad" : "");
    $("r-errors").replaceChildren(...(refused ? last.errors : []).map((e) => el("li", "", e.text || e.message)));
    $("rules-panel").className = "panel" + (refused ? " bad" : "");
    S.rulesBad = refused;
    badge("rules-badge", refused ? "reload refused" : "rules " + r.version, refused ? "bad" : "ok");
  }

  // --- actions, newest first with paging ---------------------------------------------------------------
  function onActions(m) {  // the live page: [stream entry id, action], newest first
    const rows = m.actions.map((a, i) => [m.ids[i], a]);
    if (m.reset) { S.live = rows; S.pages = []; S.newCount = 0; }
    else {
      S.live = [...rows.reverse(), ...S.live].slice(0, PAGE);
      if (S.pages.length) S.newCount += rows.length;
    }
    if (!S.pages.length) renderActions(S.live.map((r) => r[1]));
    renderPager();
  }
  function renderActions(list) {
    table("actions", [{t: "time (UTC)", cls: "text"}, {t: "type", cls: "text"}, {t: "position / strategy", cls: "text"}, {t: "rule", cls: "text"},
                      {t: "reason", cls: "text"}],
      list.map((a) => [td("text", utc(a.ts)), td("text", a.type), td("text", a.position_id || a.strategy || ""), td("text", a.rule || ""),
                       td("reason", a.reason || "")]), "no actions yet");
  }
  function renderPager() {
    const page = S.pages.length;
    setText("a-page", page ? `page ${page + 1}` : "live · page 1");
    $("a-newer").disabled = !page; $("a-newest").disabled = !page;
    $("a-older").disabled = page ? !S.pages[page - 1].next : S.live.length < PAGE;
    setText("a-new", page && S.newCount ? `${S.newCount} new since` : "");
  }
  async function olderPage() {
    const page = S.pages.length;
    const cursor = page ? S.pages[page - 1].next : (S.live.length ? S.live[S.live.length - 1][0] : null);
    if (!cursor) return;
    const r = await call("GET", "/api/actions", {order: "desc", limit: String(PAGE), cursor});
    if (!r.ok) { showProblem("actions: " + await detail(r)); return; }
    const body = await r.json();
    S.pages.push({actions: body.actions, next: body.next});
    renderActions(body.actions); renderPager();
  }
  function newerPage() { S.pages.pop(); if (S.pages.length) renderActions(S.pages[S.pages.length - 1].actions); else newest(); renderPager(); }
  function newest() { S.pages = []; S.newCount = 0; renderActions(S.live.map((r) => r[1])); renderPager(); }

  // --- trading state (GET/POST /api/trading-state, POST /api/flatten) ---------------------------------
  async function refreshTradingState() {
    let r;
    try { r = await call("GET", "/api/trading-state"); } catch (e) { return; }
    if (r.status === 404 || r.status === 405) {
      S.tradingState = null;
      setText("ts-note", "this service has no trading-state API: the state shown is the engine's halt");
      renderTradingBadge();
      return;
    }
    if (!r.ok) { setText("ts-note", "trading state: " + await detail(r), "bad"); return; }
    S.tradingState = await r.json();
    setText("ts-note", "");
    table("ts-table", [{t: "scope", cls: "text"}, {t: "name", cls: "text"}, {t: "state", cls: "text"}, {t: "reason", cls: "text"}, {t: "by", cls: "text"}, "at"],
      (S.tradingState.states || []).map((s) => [td("text", s.scope), td("text", s.name === null ? "—" : s.name), td("text", s.state),
                                                td("reason", s.reason || ""), td("text", s.by || ""), (s.at ? utc(s.at) : "never set")]), "no states set");
    renderTradingBadge();
  }
  function renderTradingBadge() {
    const halted = S.summary && S.summary.halted;
    let state = S.tradingState ? S.tradingState.effective : (halted ? "HALTED" : S.summary ? "ACTIVE" : null);
    if (halted && state === "ACTIVE") state = "HALTED";
    const cls = state === "ACTIVE" ? "ok" : state === "REDUCING" ? "warn" : state ? "bad" : "";
    const text = state ? state + (halted ? ": " + halted : "") : "trading state —";
    badge("trading-badge", text, cls);
    badge("ts-effective", state || "—", cls);
  }
  function confirmThen(text, action) {
    const d = $("confirm");
    setText("confirm-text", text);
    const yes = $("confirm-yes"), no = $("confirm-no");
    const done = (ok) => { yes.onclick = null; no.onclick = null; d.close(); if (ok) action(); };
    yes.onclick = () => done(true); no.onclick = () => done(false);
    d.showModal();
  }
  function tradingTarget() {
    const scope = $("ts-scope").value, name = $("ts-name").value.trim();
    return {scope, strategy: scope === "strategy" ? name : null, symbol: scope === "symbol" ? name : null, name};
  }
  function setState(state) {
    const t = tradingTarget(), reason = $("ts-reason").value.trim();
    if (!reason) { setText("ts-result", "give a reason first", "bad"); return; }
    if (t.scope !== "account" && !t.name) { setText("ts-result", `name the ${t.scope} first`, "bad"); return; }
    const what = t.scope === "account" ? `the account ${S.account || "(the service's first)"}` : `${t.scope} ${t.name}`;
    confirmThen(`Set ${what} to ${state}? Reason: ${reason}`, async () => {
      const r = await call("POST", "/api/trading-state", {}, {state, strategy: t.strategy, symbol: t.symbol, reason});
      setText("ts-result", r.ok ? `${what} set to ${state}` : `refused (${r.status}): ${await detail(r)}`, r.ok ? "ok" : "bad");
      if (r.ok) $("ts-reason").value = "";
      refreshTradingState();
    });
  }
  function flatten() {
    const strategy = $("fl-strategy").value.trim() || null, symbol = $("fl-symbol").value.trim() || null, reason = $("fl-reason").value.trim();
    if (!reason) { setText("ts-result", "give a reason first", "bad"); return; }
    const what = [strategy && `strategy ${strategy}`, symbol && `symbol ${symbol}`].filter(Boolean).join(", ") || "every position of the account";
    confirmThen(`Close ${what} at the market? Reason: ${reason}`, async () => {
      const r = await call("POST", "/api/flatten", {}, {strategy, symbol, reason});
      setText("ts-result", r.ok ? `flatten sent: ${what}` : `refused (${r.status}): ${await detail(r)}`, r.ok ? "ok" : "bad");
    });
  }

  // --- wiring -----------------------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("connect").addEventListener("click", signIn);
    $("token").addEventListener("keydown", (e) => { if (e.key === "Enter") signIn(); });
    $("logout").addEventListener("click", () => signOut(""));
    $("a-older").addEventListener("click", olderPage);
    $("a-newer").addEventListener("click", newerPage);
    $("a-newest").addEventListener("click", newest);
    $("ts-scope").addEventListener("change", () => { $("ts-name").disabled = $("ts-scope").value === "account"; });
    for (const b of document.querySelectorAll(".state-btn")) b.addEventListener("click", () => setState(b.dataset.state));
    $("flatten").addEventListener("click", flatten);
    $("account-input").value = S.account;
    setInterval(() => { if (S.token && !$("board").hidden) refreshTradingState(); }, 10000);
    if (S.token) start(); else signOut("");
  });
})();
