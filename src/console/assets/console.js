// The fitrank console: four pages over the JSON API under /console/api/. No framework; charts
// are uPlot's (vendored). Each open page fetches its data again every `refresh_ms` (while the tab
// is visible), and records how long each render took in `window.__fitrank.renders`: from the
// request for its data to the first frame painted after the page changed (`total_ms`), and the
// time since the document started loading (`since_load_ms`).
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const esc = (s) =>
    String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const pct = (v, d = 0) => (v == null || !isFinite(v) ? "–" : (100 * v).toFixed(d) + "%");
  const num = (v) => (v == null ? "–" : Number(v).toLocaleString("en-US"));
  const fix = (v, d = 1) => (v == null || !isFinite(v) ? "–" : Number(v).toFixed(d));
  const dur = (s) =>
    s == null ? "–" : s < 60 ? `${Math.round(s)} s` : s < 3600 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`;
  const utc = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "–");
  const clock = () => new Date().toISOString().slice(11, 19) + " UTC";

  let me = null;
  let page = null;
  let timer = null;
  window.__fitrank = { renders: [] };

  class Unauthorized extends Error {}

  async function api(path, body) {
    const init = { credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      init.method = "POST";
      init.headers = { "content-type": "application/json", "x-fitrank-console": "1" };
      init.body = JSON.stringify(body);
    }
    const r = await fetch("/console/api/" + path, init);
    let data = null;
    try {
      data = await r.json();
    } catch (_) {
      data = null;
    }
    if (r.status === 401) {
      showLogin(me ? (data && data.error) || "signed out" : "");
      throw new Unauthorized();
    }
    if (!r.ok) throw new Error((data && data.error) || `HTTP ${r.status}`);
    return data;
  }

  // ---- login ----------------------------------------------------------------------------------
  function showLogin(message) {
    me = null;
    clearTimeout(timer);
    $("#app").hidden = true;
    $("#login").hidden = false;
    $("#login-error").textContent = message || "";
    $("#token").focus();
  }

  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await fetch("/console/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: $("#token").value }),
    });
    if (!r.ok) {
      const data = await r.json().catch(() => ({}));
      $("#login-error").textContent = data.error || `HTTP ${r.status}`;
      return;
    }
    $("#token").value = "";
    start();
  });

  $("#logout").addEventListener("click", async () => {
    await fetch("/console/logout", { method: "POST", credentials: "same-origin" });
    showLogin("");
  });

  async function start() {
    try {
      me = await api("me");
    } catch (e) {
      if (!(e instanceof Unauthorized)) showLogin(String(e.message || e));
      return;
    }
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("#who").textContent = me.name;
    $("#role").textContent = me.operator ? "operator" : "viewer (read only)";
    $("#logout").hidden = me.open;
    route();
  }

  // ---- confirmation ---------------------------------------------------------------------------
  function confirmThen(text, action) {
    const dialog = $("#confirm");
    $("#confirm-text").textContent = text;
    dialog.returnValue = "";
    dialog.onclose = async () => {
      if (dialog.returnValue !== "ok") return;
      try {
        await action();
        flash("done: " + text);
      } catch (e) {
        if (!(e instanceof Unauthorized)) flash(String(e.message || e), true);
      }
      load();
    };
    dialog.showModal();
  }

  function flash(text, bad) {
    const el = $("#flash");
    if (!el) return;
    el.className = bad ? "flag" : "ok-flag";
    el.textContent = text;
    el.hidden = false;
  }

  // ---- router ---------------------------------------------------------------------------------
  function route() {
    if (!me) return;
    const parts = location.hash.replace(/^#\/?/, "").split("/");
    const name = pages[parts[0]] ? parts[0] : "audience";
    const arg = decodeURIComponent(parts.slice(1).join("/"));
    if (page && page.destroy) page.destroy();
    document.querySelectorAll(".top nav a").forEach((a) =>
      a.classList.toggle("active", a.dataset.page === (name === "session" ? "audience" : name)),
    );
    const main = $("#main");
    main.innerHTML = "";
    page = new pages[name](main, arg);
    page.name = name;
    load();
  }

  async function load() {
    clearTimeout(timer);
    const p = page;
    if (!p || !me) return;
    const t0 = performance.now();
    try {
      const data = await p.fetch();
      if (p !== page) return;
      const t1 = performance.now();
      p.render(data);
      await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
      const t2 = performance.now();
      const renders = window.__fitrank.renders;
      renders.push({ page: p.name, fetch_ms: t1 - t0, render_ms: t2 - t1, total_ms: t2 - t0, since_load_ms: t2 });
      if (renders.length > 200) renders.shift();
      $("#updated").textContent = "updated " + clock();
    } catch (e) {
      if (e instanceof Unauthorized) return;
      if (p === page) flash(String(e.message || e), true);
    }
    if (p === page) timer = setTimeout(load, me.refresh_ms);
  }

  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") load();
    else clearTimeout(timer);
  });

  // ---- shared pieces --------------------------------------------------------------------------
  function card(label, value, cls) {
    return `<div class="card"><div class="v ${cls || ""}">${value}</div><div class="k">${esc(label)}</div></div>`;
  }

  // A heat map of counts per age band (rows) × gender (columns); with `declared`, the cells inside
  // the declared target are outlined, undecided ones dashed.
  function heatTable(title, heat, values, declared) {
    const total = values.reduce((a, b) => a + b, 0);
    const max = Math.max(1, ...values);
    const g = heat.genders.length;
    let html = `<table class="heat" data-heat="${esc(title)}"><caption><b>${esc(title)}</b> <span class="muted">(${num(total)})</span></caption>`;
    html += `<tr><th></th>${heat.genders.map((x) => `<th>${esc(x)}</th>`).join("")}</tr>`;
    heat.ages.forEach((age, a) => {
      html += `<tr><th>${esc(age)}</th>`;
      for (let k = 0; k < g; k++) {
        const i = a * g + k;
        const v = values[i];
        const alpha = v ? 0.08 + 0.92 * (v / max) : 0;
        const ink = alpha > 0.55 ? "#fff" : "#1d2330";
        const mark = declared ? (declared[i] === true ? "in" : declared[i] === false ? "out" : "undecided") : "";
        const share = total ? ` (${((100 * v) / total).toFixed(0)}%)` : "";
        html += `<td class="${mark}" style="background:rgba(36,87,197,${alpha.toFixed(3)});color:${ink}" title="${esc(age)} ${esc(heat.genders[k])}: ${num(v)}${share}">${v ? num(v) : ""}</td>`;
      }
      html += "</tr>";
    });
    return html + "</table>";
  }

  function heatLegend(withDeclared) {
    return `<div class="legend"><span>0</span><span class="scale"></span><span>most in the map</span>${
      withDeclared
        ? `<span><span class="box"></span> inside the declared target</span><span><span class="box dashed"></span> target cannot tell (unknown age or gender)</span>`
        : ""
    }</div>`;
  }

  function auditPanel(el) {
    api("audit")
      .then((data) => {
        const items = data.entries
          .slice(0, 12)
          .map(
            (e) =>
              `<li><span class="muted">${esc(utc(e.time_unix_ms))}</span> <b>${esc(e.actor)}</b> (${esc(e.via)}) ${esc(e.action)} <code>${esc(e.target)}</code></li>`,
          )
          .join("");
        el.innerHTML = `<h3>Recent changes (audit log)</h3><ul class="audit">${items || "<li class=muted>none yet</li>"}</ul>`;
      })
      .catch(() => {});
  }

  // A uPlot time chart that keeps its instance across refreshes.
  class TimeChart {
    constructor(el, title, unit, series) {
      this.el = el;
      this.title = title;
      this.unit = unit;
      this.series = series;
      this.plot = null;
      el.innerHTML = `<h3>${esc(title)}</h3><div class="plot"></div>`;
    }
    update(xs, ys) {
      const data = [xs, ...ys];
      if (this.plot) {
        this.plot.setData(data);
        return;
      }
      const unit = this.unit;
      const fmt = (u, v) => (v == null ? "–" : `${fix(v, v < 10 ? 2 : 0)} ${unit}`);
      this.plot = new uPlot(
        {
          width: Math.max(320, this.el.clientWidth - 24),
          height: 220,
          tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
          scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.15 : 1] } },
          axes: [
            { label: "time (UTC)" },
            {
              label: unit,
              size: 70,
              values: (u, vals) => {
                const step = vals.length > 1 ? Math.abs(vals[1] - vals[0]) : 1;
                const digits = step >= 1 ? 0 : Math.min(4, Math.ceil(-Math.log10(step)));
                return vals.map((v) => fix(v, digits));
              },
            },
          ],
          series: [{ label: "time", value: (u, v) => (v == null ? "–" : utc(v * 1000)) }].concat(
            this.series.map((s) => ({ label: s.label, stroke: s.color, width: 2, value: fmt, spanGaps: true })),
          ),
          legend: { show: true },
        },
        data,
        $(".plot", this.el),
      );
    }
    destroy() {
      if (this.plot) this.plot.destroy();
    }
  }

  // ---- Audience -------------------------------------------------------------------------------
  const columns = [
    ["session", "session", "l"],
    ["host", "host", "l"],
    ["category", "category", "l"],
    [null, "declared target", "l"],
    ["shown", "shown"],
    ["shown_inside", "shown inside target"],
    ["viewers_inside", "viewers inside"],
    ["buyers_inside", "buyers inside"],
    ["true_audience", "shown to true audience"],
    ["wasted", "wasted exposure"],
    ["views", "views"],
    ["purchases", "purchases"],
    ["first_purchase", "first purchase after"],
  ];

  class Audience {
    constructor(main) {
      this.query = { q: "", category: "", host: "", mismatch: false, sort: "purchases", desc: true, offset: 0 };
      this.categories = null;
      main.innerHTML = `
        <h2>Audience: is each live stream reaching the audience it was made for?</h2>
        <div id="flash" hidden></div>
        <div class="cards" id="aud-cards"></div>
        <div class="panel">
          <div class="filters">
            <input id="filter-text" placeholder="session or host id" size="22">
            <select id="filter-category"><option value="">every category</option></select>
            <label><input type="checkbox" id="filter-mismatch"> mismatched only</label>
            <span class="muted" id="aud-count"></span>
          </div>
          <div style="overflow:auto; max-height: 62vh"><table class="grid" id="sessions"><thead><tr>${columns
            .map(
              ([key, label, cls]) =>
                `<th class="${cls || ""} ${key ? "sortable" : ""}" ${key ? `data-sort="${key}"` : ""}>${esc(label)}</th>`,
            )
            .join("")}</tr></thead><tbody></tbody></table></div>
          <div class="pager"><button id="prev">Previous</button><span id="page-info" class="muted"></span><button id="next">Next</button></div>
        </div>
        <div class="panel"><h3>Over the sessions listed: shown to, viewed by and bought by, per age band × gender</h3>
          <div class="heats" id="aud-heat"></div>${heatLegend(false)}
          <p class="muted">"Shown" counts this replica's placements of a session in the rankings it returned; views and purchases are the events the store counted for users with a profile.</p>
        </div>`;
      const changed = () => {
        this.query.offset = 0;
        load();
      };
      let typing = null;
      $("#filter-text").addEventListener("input", (e) => {
        this.query.q = e.target.value.trim();
        clearTimeout(typing);
        typing = setTimeout(changed, 250);
      });
      $("#filter-category").addEventListener("change", (e) => {
        this.query.category = e.target.value;
        changed();
      });
      $("#filter-mismatch").addEventListener("change", (e) => {
        this.query.mismatch = e.target.checked;
        changed();
      });
      main.querySelectorAll("th[data-sort]").forEach((th) =>
        th.addEventListener("click", () => {
          const key = th.dataset.sort;
          this.query.desc = this.query.sort === key ? !this.query.desc : true;
          this.query.sort = key;
          changed();
        }),
      );
      $("#prev").addEventListener("click", () => {
        this.query.offset = Math.max(0, this.query.offset - 100);
        load();
      });
      $("#next").addEventListener("click", () => {
        this.query.offset += 100;
        load();
      });
      $("#sessions tbody").addEventListener("click", (e) => {
        const tr = e.target.closest("tr[data-session]");
        if (tr) location.hash = "#/session/" + encodeURIComponent(tr.dataset.session);
      });
    }
    fetch() {
      const q = this.query;
      const params = new URLSearchParams({
        q: q.q,
        category: q.category,
        host: q.host,
        mismatch: q.mismatch ? "1" : "0",
        sort: q.sort,
        desc: q.desc ? "1" : "0",
        offset: String(q.offset),
        limit: "100",
      });
      return api("audience?" + params);
    }
    render(d) {
      const s = d.summary;
      $("#aud-cards").innerHTML =
        card("live sessions", num(d.live)) +
        card("mismatched (listed)", num(s.mismatched), s.mismatched ? "bad" : "") +
        card("shown inside the declared target", pct(s.shown_inside)) +
        card("shown to the true audience", pct(s.true_audience)) +
        card("wasted exposure", pct(s.wasted), s.wasted > 0.3 ? "warn" : "") +
        card("new hosts that sold", `${num(s.new_hosts_selling)} / ${num(s.new_hosts)}`) +
        card("new hosts: median time to first purchase", dur(s.new_hosts_median_first_purchase_s));
      if (!this.categories) {
        this.categories = d.categories;
        $("#filter-category").innerHTML +=
          d.categories.map((c) => `<option value="${esc(c)}">${esc(c)}</option>`).join("");
      }
      $("#aud-count").textContent = `${num(d.matched)} of ${num(d.live)} live sessions`;
      document.querySelectorAll("#sessions th[data-sort]").forEach((th) => {
        th.classList.toggle("sorted", th.dataset.sort === this.query.sort);
        th.classList.toggle("asc", th.dataset.sort === this.query.sort && !this.query.desc);
      });
      $("#sessions tbody").innerHTML = d.rows
        .map(
          (r) => `<tr class="clickable session-row" data-session="${esc(r.session_id)}">
          <td class="l">${esc(r.session_id)}</td><td class="l">${esc(r.host_id)}${r.new_host ? ' <span class="pill">new</span>' : ""}</td>
          <td class="l">${esc(r.category)}</td><td class="l">${esc(r.declared)}</td>
          <td>${num(r.shown)}</td><td>${pct(r.shown_inside)}</td><td>${pct(r.viewers_inside)}</td><td>${pct(r.buyers_inside)}</td>
          <td>${pct(r.true_audience)}</td><td>${pct(r.wasted)}</td><td>${num(r.views)}</td><td>${num(r.purchases)}</td>
          <td>${dur(r.first_purchase_s)}</td></tr>${
            r.mismatch
              ? `<tr class="clickable flag-row" data-session="${esc(r.session_id)}"><td class="mismatch" colspan="${columns.length}">⚠ ${esc(r.mismatch)}</td></tr>`
              : ""
          }`,
        )
        .join("");
      const last = Math.min(d.matched, d.offset + d.rows.length);
      $("#page-info").textContent = d.matched ? `${num(d.offset + 1)}–${num(last)} of ${num(d.matched)}` : "nothing matches";
      $("#prev").disabled = d.offset === 0;
      $("#next").disabled = last >= d.matched;
      $("#aud-heat").innerHTML =
        heatTable("shown to", d.heat, d.heat.shown) +
        heatTable("viewed by", d.heat, d.heat.viewed) +
        heatTable("bought by", d.heat, d.heat.bought);
    }
  }

  // ---- one session ----------------------------------------------------------------------------
  class Session {
    constructor(main, id) {
      this.id = id;
      main.innerHTML = `
        <p><a href="#/audience">← all live sessions</a></p>
        <h2 id="session-title">${esc(id)}</h2>
        <div id="flash" hidden></div>
        <div id="session-flag"></div>
        <div class="cards" id="session-cards"></div>
        <div class="panel"><h3>Declared target (outlined) against who was shown, who viewed and who bought</h3>
          <div class="heats" id="session-heat"></div>${heatLegend(true)}</div>
        <div class="row">
          <div class="chart" id="chart-counts" style="flex:1; min-width:420px"></div>
          <div class="chart" id="chart-shares" style="flex:1; min-width:420px"></div>
        </div>
        <p class="muted" id="timeline-note"></p>`;
      this.counts = new TimeChart($("#chart-counts"), "How the show went", "count", [
        { label: "views", color: "#2457c5" },
        { label: "purchases ×10", color: "#067647" },
      ]);
      this.shares = new TimeChart($("#chart-shares"), "How its audience evolved: share inside the declared target", "%", [
        { label: "shown", color: "#7a5af8" },
        { label: "viewers", color: "#2457c5" },
        { label: "buyers", color: "#067647" },
      ]);
    }
    fetch() {
      return api("sessions/" + encodeURIComponent(this.id));
    }
    render(d) {
      const r = d.row;
      $("#session-title").textContent = `${r.session_id} · host ${r.host_id} · ${r.category}, ${r.price_band} · ${d.status}`;
      $("#session-flag").innerHTML = r.mismatch
        ? `<div class="flag" id="mismatch">${esc(r.mismatch)}</div>`
        : `<div class="ok-flag">No mismatch flagged: ${r.purchases >= 10 || r.views >= 50 ? "the evidence agrees with the declared target" : "not enough evidence yet"}.</div>`;
      $("#session-cards").innerHTML =
        card("declared target", esc(r.declared)) +
        card("shown (this replica)", num(r.shown)) +
        card("shown inside target", pct(r.shown_inside)) +
        card("viewers inside", pct(r.viewers_inside)) +
        card("buyers inside", pct(r.buyers_inside)) +
        card("shown to the true audience", pct(r.true_audience)) +
        card("wasted exposure", pct(r.wasted)) +
        card("views / purchases", `${num(r.views)} / ${num(r.purchases)}`) +
        card("first purchase after", dur(r.first_purchase_s)) +
        card("top buyers", esc(r.top_buyers || "–"));
      const declared = d.heat.declared;
      $("#session-heat").innerHTML =
        heatTable("shown to", d.heat, d.heat.shown, declared) +
        heatTable("viewed by", d.heat, d.heat.viewed, declared) +
        heatTable("bought by", d.heat, d.heat.bought, declared);
      const t = d.timeline;
      $("#timeline-note").textContent =
        t.length < 2
          ? "The timeline fills in as the console samples the session (every few seconds while the service runs)."
          : `${t.length} samples since ${utc(t[0].t_ms)}.`;
      const xs = t.map((p) => p.t_ms / 1000);
      this.counts.update(xs, [t.map((p) => p.views), t.map((p) => p.purchases * 10)]);
      const share = (f) => t.map((p) => (p[f] == null ? null : 100 * p[f]));
      this.shares.update(xs, [share("shown_inside"), share("viewers_inside"), share("buyers_inside")]);
    }
    destroy() {
      this.counts.destroy();
      this.shares.destroy();
    }
  }

  // ---- Experiments ----------------------------------------------------------------------------
  function ciBar(c) {
    if (!c || !isFinite(c.ci_low)) return "";
    // The interval of the difference in conversion, on a scale of ±(largest end).
    const span = Math.max(Math.abs(c.ci_low), Math.abs(c.ci_high), 1e-9);
    const x = (v) => 50 + (50 * v) / span;
    const cls = c.ci_low > 0 ? "up" : c.ci_high < 0 ? "down" : "";
    return `<span class="ci" title="95% interval of the difference"><span class="axis"></span><span class="range ${cls}" style="left:${x(c.ci_low)}%;width:${Math.max(1, x(c.ci_high) - x(c.ci_low))}%"></span></span>`;
  }

  class Experiments {
    constructor(main) {
      main.innerHTML = `
        <h2>Experiments</h2>
        <div id="flash" hidden></div>
        <div id="experiments"></div>
        ${
          me.operator
            ? `<div class="panel"><h3>Create an experiment</h3>
          <form id="create-experiment" class="create">
            <label>name<input name="name" required maxlength="64"></label>
            <label>layer<input name="layer" value="ranking" maxlength="64"></label>
            <label>coverage of its range (%)<input name="coverage" type="number" min="0" max="100" step="0.1" value="10"></label>
            <label>arms, one per line: name weight [model]<textarea name="arms" rows="3">control 1
treatment 1</textarea></label>
            <button class="primary" type="submit">Create…</button>
          </form><p class="muted">The first arm is the control. A model is <code>name/version</code> from the models folder; without one the arm scores with the serving model.</p></div>`
            : ""
        }
        <div class="panel" id="audit"></div>`;
      const form = $("#create-experiment");
      if (form)
        form.addEventListener("submit", (ev) => {
          ev.preventDefault();
          const f = new FormData(form);
          const arms = String(f.get("arms"))
            .split("\n")
            .map((l) => l.trim().split(/\s+/))
            .filter((p) => p[0])
            .map(([name, weight, model]) => (model ? { name, weight: Number(weight || 1), model } : { name, weight: Number(weight || 1) }));
          const def = {
            name: String(f.get("name")).trim(),
            layer: String(f.get("layer")).trim(),
            coverage: Number(f.get("coverage")) / 100,
            arms,
          };
          confirmThen(`Create experiment "${def.name}" on ${pct(def.coverage, 1)} of layer "${def.layer}" with arms ${arms.map((a) => a.name).join(", ")}?`, () =>
            api("experiments", def),
          );
        });
      $("#experiments").addEventListener("click", (ev) => {
        const btn = ev.target.closest("button[data-action]");
        if (!btn) return;
        const name = btn.dataset.experiment;
        const path = "experiments/" + encodeURIComponent(name);
        if (btn.dataset.action === "stop") confirmThen(`Stop experiment "${name}"? Its users return to the service's own ranking.`, () => api(path + "/stop", {}));
        if (btn.dataset.action === "ramp") {
          const input = document.querySelector(`input[data-coverage="${CSS.escape(name)}"]`);
          const coverage = Number(input.value) / 100;
          confirmThen(`Set experiment "${name}" to ${pct(coverage, 1)} of its range?`, () => api(path + "/coverage", { coverage }));
        }
      });
    }
    fetch() {
      return api("experiments");
    }
    render(d) {
      const layers = {};
      d.experiments.forEach((e) => (layers[e.definition.layer || "(default)"] ||= []).push(e));
      const holdout = d.holdout && d.holdout.share ? `<p class="muted">Global holdout: ${pct(d.holdout.share, 1)} of users see no experiment.</p>` : "";
      const html = Object.entries(layers)
        .map(([layer, list]) => {
          const bars = list
            .filter((e) => e.definition.status === "running")
            .map((e) => {
              const def = e.definition;
              const left = (100 * def.range_start) / d.buckets;
              const width = (100 * (def.range_end - def.range_start)) / d.buckets;
              return `<span style="left:${left}%;width:${width}%" title="${esc(def.name)}: buckets ${def.range_start}–${def.range_end}"></span><span class="covered" style="left:${left}%;width:${width * def.coverage}%" title="${esc(def.name)}: ${pct(def.coverage, 1)} covered"></span>`;
            })
            .join("");
          return `<div class="panel"><h3>Layer ${esc(layer)}</h3>
            <div class="bar" title="bucket ranges of the layer's running experiments (dark: covered)">${bars}</div>
            <div class="legend"><span>0</span><span style="flex:1"></span><span>${num(d.buckets)} buckets · light: an experiment's range · dark: the part its coverage admits</span></div>
            ${list.map((e) => this.experiment(e)).join("")}</div>`;
        })
        .join("");
      $("#experiments").innerHTML = holdout + (html || `<div class="panel muted">No experiments yet.</div>`);
      auditPanel($("#audit"));
    }
    experiment(e) {
      const def = e.definition;
      const running = def.status === "running";
      const r = e.readout;
      const arms = def.arms
        .map((a, i) => {
          const o = r ? r.arms[i] : null;
          return `<tr><td class="l">${esc(a.name)}${a.name === def.control ? ' <span class="pill">control</span>' : ""}</td><td>${fix(a.weight, 2)}</td><td class="l">${esc(a.model || "serving model")}</td>
            <td>${o ? num(o.rankings) : "–"}</td><td>${o ? num(o.users) : "–"}</td><td>${o ? num(o.buyers) : "–"}</td>
            <td>${o ? pct(o.conversion, 2) : "–"}</td><td>${o ? fix(o.purchases_per_user, 3) : "–"}</td><td>${o ? fix(o.revenue_per_user, 2) : "–"}</td></tr>`;
        })
        .join("");
      // Each treatment arm's difference from control, per metric, with its 95% interval.
      const metric = (label, c, scale, digits) =>
        c
          ? `<td class="l">${esc(label)}</td><td>${c.difference >= 0 ? "+" : ""}${fix(scale * c.difference, digits)}</td>
             <td>[${fix(scale * c.ci_low, digits)}, ${fix(scale * c.ci_high, digits)}]</td>
             <td>${isFinite(c.lift) ? (c.lift >= 0 ? "+" : "") + fix(100 * c.lift, 1) + "%" : "–"}</td><td>${fix(c.p_value, 3)}</td><td class="l">${ciBar(c)}</td>`
          : `<td class="l">${esc(label)}</td><td colspan="5" class="muted l">not enough users yet</td>`;
      const lifts = r
        ? r.arms
            .filter((o) => o.arm !== def.control)
            .map(
              (o) =>
                `<tr><th class="l" rowspan="3">${esc(o.arm)}</th>${metric("conversion (points)", o.vs_control, 100, 2)}</tr>
                 <tr>${metric("purchases per user", o.purchases_vs_control, 1, 3)}</tr>
                 <tr>${metric("revenue per user", o.revenue_vs_control, 1, 2)}</tr>`,
            )
            .join("")
        : "";
      const srm = r && r.srm
        ? r.srm.alert
          ? `<span class="bad">Sample-ratio mismatch: users per arm do not follow the weights (χ² ${fix(r.srm.chi_square, 1)}, p=${r.srm.p_value.toExponential(1)}). Do not trust the lift.</span>`
          : `<span class="good">Sample ratio OK (χ² ${fix(r.srm.chi_square, 2)}, p=${fix(r.srm.p_value, 3)})</span>`
        : `<span class="muted">Sample ratio: not enough users yet</span>`;
      const guard = e.guardrails.length
        ? `<table class="grid"><tr><th class="l">guardrails: arm</th><th>rankings</th><th>error rate</th><th>p50</th><th>p99</th></tr>${e.guardrails
            .map(
              (g) =>
                `<tr><td class="l">${esc(g.arm)}</td><td>${num(g.requests)}</td><td class="${g.error_rate > 0.01 ? "bad" : ""}">${pct(g.error_rate, 2)}</td><td>${fix(g.p50_us / 1000, 2)} ms</td><td>${fix(g.p99_us / 1000, 2)} ms</td></tr>`,
            )
            .join("")}</table>`
        : "";
      const actions =
        me.operator && running
          ? `<div class="actions"><label>coverage <input type="number" min="0" max="100" step="0.1" data-coverage="${esc(def.name)}" value="${fix(100 * def.coverage, 1)}" style="width:80px"> %</label>
             <button data-action="ramp" data-experiment="${esc(def.name)}">Set coverage…</button>
             <button class="danger" data-action="stop" data-experiment="${esc(def.name)}">Stop…</button></div>`
          : "";
      return `<div class="panel exp ${running ? "" : "stopped"}" data-experiment="${esc(def.name)}">
        <h3>${esc(def.name)} <span class="pill ${running ? "on" : ""}">${esc(def.status)}</span> <span class="muted">${esc(def.kind)} · buckets ${def.range_start}–${def.range_end} · coverage <b class="coverage">${pct(def.coverage, 1)}</b></span></h3>
        ${
          r
            ? `<table class="grid"><tr><th class="l">arm</th><th>weight</th><th class="l">model</th><th>rankings</th><th>users</th><th>buyers</th><th>conversion</th><th>purchases / user</th><th>revenue / user</th></tr>${arms}</table>
               <table class="grid lifts"><tr><th class="l">vs ${esc(def.control)}</th><th class="l">metric</th><th>difference</th><th>95% interval</th><th>relative</th><th>p</th><th class="l">interval around 0</th></tr>${lifts}</table><p>${srm}</p>`
            : `<p class="muted">Interleaving: every ranking mixes both arms; read the preference with <code>fitrank report</code>.</p>`
        }
        ${guard}${actions}</div>`;
    }
  }

  // ---- Models ---------------------------------------------------------------------------------
  class Models {
    constructor(main) {
      main.innerHTML = `<h2>Models</h2><div id="flash" hidden></div><div class="panel" id="serving"></div>
        <div class="panel" id="comparison"></div>
        <div class="panel"><h3>Versions</h3><div style="overflow:auto"><table class="grid" id="versions"></table></div>
        <p class="muted" id="metrics-note"></p></div><div class="panel" id="audit"></div>`;
      main.addEventListener("click", (ev) => {
        const btn = ev.target.closest("button[data-action]");
        if (!btn) return;
        const a = btn.dataset.action;
        if (a === "rollback") confirmThen("Roll back to the model that served before this one?", () => api("models/rollback", {}));
        if (a === "unpin") confirmThen("Unpin: serve the newest version and follow new ones again?", () => api("models/unpin", {}));
        if (a === "pin") confirmThen(`Serve version ${btn.dataset.version} and pin it?`, () => api("models/load", { version: btn.dataset.version }));
      });
    }
    fetch() {
      return api("models");
    }
    render(d) {
      const op = me.operator;
      $("#serving").innerHTML = `<h3>Serving <code id="serving-id">${esc(d.serving)}</code> ${d.pinned ? '<span class="pill">pinned</span>' : '<span class="pill on">follows the newest version</span>'}</h3>
        <p class="muted">Before it: ${esc(d.previous || "none")}</p>
        ${op ? `<div class="actions" style="display:flex;gap:8px">${d.previous ? '<button data-action="rollback" id="rollback">Roll back…</button>' : ""}${d.pinned ? '<button data-action="unpin" id="unpin">Unpin…</button>' : ""}</div>` : ""}`;
      // The held-out AUCs and log losses; every metric is in the row's tooltip.
      const shown = (k) => /_auc$/.test(k) || /^(engage|purchase)_logloss$/.test(k);
      const keys = [...new Set(d.versions.flatMap((v) => (v.manifest ? Object.keys(v.manifest.metrics) : [])))].filter(shown).sort();
      const sources = new Set(d.versions.filter((v) => v.manifest && v.manifest.metrics_data).map((v) => JSON.stringify(v.manifest.metrics_data)));
      $("#versions").innerHTML =
        `<tr><th class="l">version</th><th class="l">created</th><th>trained on rows</th>${keys.map((k) => `<th>${esc(k)}</th>`).join("")}<th class="l">metrics measured on</th><th></th></tr>` +
        d.versions
          .map((v) => {
            if (!v.manifest) return `<tr data-version="${esc(v.version)}"><td class="l">${esc(v.version)}</td><td class="l bad" colspan="${keys.length + 4}">cannot serve: ${esc(v.error)}</td></tr>`;
            const m = v.manifest;
            const md = m.metrics_data;
            const all = Object.entries(m.metrics).map(([k, x]) => `${k} ${fix(x, 4)}`).join("\n");
            return `<tr data-version="${esc(v.version)}" class="${v.serving ? "serving" : ""}" title="${esc(all)}"><td class="l">${esc(v.version)} ${v.serving ? '<span class="pill on">serving</span>' : ""}</td>
              <td class="l">${esc(m.created_at)}</td><td>${num(m.training.rows)}</td>${keys.map((k) => `<td>${fix(m.metrics[k], 4)}</td>`).join("")}
              <td class="l">${md ? `${esc(md.source)}: ${num(md.rows)} rows${md.from_ms ? `, ${esc(utc(md.from_ms))} – ${esc(utc(md.to_ms))}` : ""}` : '<span class="muted">not recorded</span>'}</td>
              <td>${op && !v.serving ? `<button data-action="pin" data-version="${esc(v.version)}">Serve…</button>` : ""}</td></tr>`;
          })
          .join("");
      $("#comparison").innerHTML = comparisonTable(d.comparison, d.serving);
      const unrecorded = d.versions.some((v) => v.manifest && !v.manifest.metrics_data);
      $("#metrics-note").textContent =
        sources.size > 1 || (unrecorded && d.versions.length > 1)
          ? "Each version's metrics here come from its own held-out rows (or rows it does not record), so they do not compare across versions: the comparison above scores them on the same rows."
          : "The versions' metrics are measured on the same rows, named beside them.";
      auditPanel($("#audit"));
    }
  }

  // Versions scored on the same rows (`fitrank evaluate --record`), best of each metric in bold.
  function comparisonTable(c, serving) {
    if (!c)
      return `<h3>Compared on the same rows</h3><p class="muted">No comparison recorded yet: <code>fitrank evaluate --data EXPORT --model default/A --model default/B --record</code> scores versions on the same later rows and records the result here.</p>`;
    const keys = [...new Set(c.versions.flatMap((v) => Object.keys(v.metrics)))].sort();
    const lower = (k) => /logloss/.test(k);
    const best = {};
    keys.forEach((k) => {
      const xs = c.versions.map((v) => v.metrics[k]).filter((x) => x != null);
      best[k] = lower(k) ? Math.min(...xs) : Math.max(...xs);
    });
    const span = c.from_ms ? `, events ${esc(utc(c.from_ms))} – ${esc(utc(c.to_ms))}` : "";
    return `<h3>Compared on the same rows</h3>
      <p class="muted">${num(c.rows)} rows of ${esc(c.data)}${span}; recorded ${esc(c.created_at)}. Higher AUC and NDCG are better, lower log loss.</p>
      <table class="grid" id="comparison-table"><tr><th class="l">version</th>${keys.map((k) => `<th>${esc(k)}</th>`).join("")}</tr>${c.versions
        .map(
          (v) =>
            `<tr><td class="l">${esc(v.model)} ${v.model === serving ? '<span class="pill on">serving</span>' : ""}</td>${keys
              .map((k) => `<td>${v.metrics[k] === best[k] ? `<b>${fix(v.metrics[k], 4)}</b>` : fix(v.metrics[k], 4)}</td>`)
              .join("")}</tr>`,
        )
        .join("")}</table>`;
  }

  // ---- Service --------------------------------------------------------------------------------
  class Service {
    constructor(main) {
      main.innerHTML = `<h2>Service</h2><div id="flash" hidden></div><div class="cards" id="svc-cards"></div>
        <div class="row">
          <div class="chart" id="chart-latency" style="flex:1; min-width:420px"></div>
          <div class="chart" id="chart-rankings" style="flex:1; min-width:420px"></div>
        </div>
        <div class="row">
          <div class="chart" id="chart-ingest" style="flex:1; min-width:420px"></div>
          <div class="chart" id="chart-drops" style="flex:1; min-width:420px"></div>
        </div>
        <p class="muted">From the same counters as <code>/metrics</code>, sampled by this replica; latency is the server-side time inside <code>Rank</code>.</p>`;
      this.charts = [
        new TimeChart($("#chart-latency"), "Rank latency (server side)", "ms", [
          { label: "p50", color: "#2457c5" },
          { label: "p99", color: "#b42318" },
        ]),
        new TimeChart($("#chart-rankings"), "Rankings", "per s", [
          { label: "rankings", color: "#2457c5" },
          { label: "degraded", color: "#b54708" },
          { label: "errors", color: "#b42318" },
        ]),
        new TimeChart($("#chart-ingest"), "Events", "per s", [
          { label: "stored", color: "#067647" },
          { label: "duplicates", color: "#7a5af8" },
          { label: "refused", color: "#b42318" },
        ]),
        new TimeChart($("#chart-drops"), "Feature log: rankings dropped", "per s", [{ label: "dropped", color: "#b42318" }]),
      ];
    }
    fetch() {
      return api("service");
    }
    render(d) {
      const s = d.store;
      const l = d.latency;
      const p = d.points;
      const last = p.length ? p[p.length - 1] : null;
      $("#svc-cards").innerHTML =
        card("store", `${esc(s.backend)} <span class="pill ${s.reachable ? "on" : "off"}">${s.reachable ? "up" : "down"}</span>`) +
        card("read breaker", s.breaker_open ? "open" : "closed", s.breaker_open ? "bad" : "") +
        card("degraded reads (total)", num(s.degraded_reads)) +
        card("store failures (total)", num(s.failures)) +
        card("Rank p50 / p99 (window)", `${fix(l.p50_us / 1000, 2)} / ${fix(l.p99_us / 1000, 2)} ms`) +
        card("rankings per second", last ? fix(last.rankings_per_s, 1) : "–") +
        card("events per second", last ? fix(last.events_per_s, 0) : "–") +
        card("serving model", `<code>${esc(d.model)}</code>`);
      const xs = p.map((x) => x.t_ms / 1000);
      const col = (f, k = 1) => p.map((x) => x[f] * k);
      this.charts[0].update(xs, [col("rank_p50_us", 0.001), col("rank_p99_us", 0.001)]);
      this.charts[1].update(xs, [col("rankings_per_s"), col("degraded_per_s"), col("rank_errors_per_s")]);
      this.charts[2].update(xs, [col("events_per_s"), col("duplicates_per_s"), col("rejected_per_s")]);
      this.charts[3].update(xs, [col("feature_log_dropped_per_s")]);
    }
    destroy() {
      this.charts.forEach((c) => c.destroy());
    }
  }

  const pages = { audience: Audience, session: Session, experiments: Experiments, models: Models, service: Service };
  start();
})();
