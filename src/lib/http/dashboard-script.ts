/**
 * The dashboard's script (served as /assets/dashboard.js): plain browser
 * JavaScript, no framework, no build step. It draws from `/api/events`
 * (stats each second, job and worker changes) and asks the REST API only
 * for bounded pages, so it stays responsive with a million queued jobs.
 * Text from the server is always set with textContent (never HTML).
 * Written without template literals so it can live in this TS string.
 */
export const DASHBOARD_JS = String.raw`(function () {
  'use strict';

  var TOKEN_KEY = 'taskwire.token';
  var PAGE = 50;
  var state = {
    info: { tokenRequired: false, serverVersion: '' },
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    stats: null,
    done: [],
    failed: [],
    second: -1,
    view: '',
    jobs: { query: {}, cursors: [0], page: null, refetchTimer: 0, lastFetch: 0 },
    workersFetchedAt: 0,
    detailId: 0
  };

  // ---------------------------------------------------------------- helpers

  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) continue;
        if (k === 'text') el.textContent = String(v);
        else if (k === 'className') el.className = v;
        else if (k === 'style') el.style.cssText = v; // CSSOM: allowed by the page's CSP, unlike a style attribute
        else if (k.slice(0, 2) === 'on') el.addEventListener(k.slice(2), v);
        else if (v === true) el.setAttribute(k, '');
        else el.setAttribute(k, String(v));
      }
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function append(el, child) {
    if (child === undefined || child === null || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(el, c); }); return; }
    el.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
  function $(id) { return document.getElementById(id); }
  function fmtInt(n) { return n === undefined || n === null ? '-' : Number(n).toLocaleString('en-US'); }
  function fmtAge(ms) {
    if (ms === undefined || ms === null) return '-';
    if (ms < 1000) return Math.round(ms) + ' ms';
    var s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' m ' + Math.floor(s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' m';
  }
  function fmtTime(wallMs) { return wallMs ? new Date(wallMs).toLocaleTimeString() : '-'; }
  function fmtBytes(n) {
    if (n === undefined || n === null) return '-';
    if (n < 1024) return n + ' B';
    if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
    if (n < 1073741824) return (n / 1048576).toFixed(1) + ' MiB';
    return (n / 1073741824).toFixed(2) + ' GiB';
  }
  function canWrite() { return !state.info.tokenRequired || state.token !== ''; }
  function toast(text, bad) {
    var el = h('div', { className: bad ? 'bad' : '', text: text, role: 'status' });
    $('toast').appendChild(el);
    setTimeout(function () { el.remove(); }, bad ? 6000 : 3000);
  }
  function stateBadge(s) { return h('span', { className: 'state ' + s, text: s }); }
  function button(label, action, onclick, opts) {
    opts = opts || {};
    var b = h('button', { text: label, 'data-action': action, className: opts.danger ? 'danger' : '', title: opts.title });
    if (opts.write !== false && !canWrite()) { b.disabled = true; b.title = 'read-only: enter the token to change things'; }
    if (opts.disabled) b.disabled = true;
    b.addEventListener('click', function (ev) { ev.preventDefault(); onclick(b); });
    return b;
  }

  /** fetch + JSON; resolves with the body, rejects with { code, message, status }. */
  function api(method, path, body) {
    var headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    var init = { method: method, headers: headers };
    if (body !== undefined) { headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
    return fetch(path, init).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!res.ok) {
          var err = (data && data.error) || { code: 'HTTP_' + res.status, message: res.statusText };
          throw { code: err.code, message: err.message, status: res.status };
        }
        return data;
      });
    });
  }
  function act(promise, okText) {
    return promise.then(function (r) { if (okText) toast(okText); return r; }, function (err) {
      toast((err.code || 'ERROR') + ': ' + (err.message || String(err)), true);
      if (err.status === 401 || err.status === 403) { state.token = ''; sessionStorage.removeItem(TOKEN_KEY); renderAuth(); }
      throw err;
    });
  }

  /** A modal asking to confirm; with needText the user must type it (purge names the kind). */
  function confirmDialog(message, needText) {
    return new Promise(function (resolve) {
      var dlg = $('confirm');
      dlg.textContent = '';
      var input = needText ? h('input', { 'aria-label': 'confirmation', placeholder: needText, autocomplete: 'off' }) : null;
      var ok = h('button', { text: 'Confirm', className: 'danger', 'data-action': 'confirm' });
      var cancel = h('button', { text: 'Cancel', 'data-action': 'cancel-dialog' });
      if (input) {
        ok.disabled = true;
        input.addEventListener('input', function () { ok.disabled = input.value !== needText; });
      }
      function close(v) { dlg.close(); resolve(v); }
      ok.addEventListener('click', function () { close(true); });
      cancel.addEventListener('click', function () { close(false); });
      dlg.appendChild(h('p', { text: message }));
      if (input) dlg.appendChild(h('p', null, 'Type ', h('b', { text: needText }), ' to confirm:', h('br'), input));
      dlg.appendChild(h('div', { className: 'row' }, cancel, ok));
      dlg.showModal();
      if (input) input.focus();
    });
  }

  // ---------------------------------------------------------------- token

  function renderAuth() {
    var box = $('auth');
    box.textContent = '';
    if (!state.info.tokenRequired) { box.appendChild(h('span', { className: 'muted', text: 'loopback, no token' })); return; }
    if (state.token) {
      box.appendChild(h('span', { text: 'token set' }));
      box.appendChild(button('Forget', 'forget-token', function () {
        state.token = ''; sessionStorage.removeItem(TOKEN_KEY); renderAuth(); render();
      }, { write: false }));
      return;
    }
    var input = h('input', { type: 'password', id: 'token-input', placeholder: 'token (read-only without)', autocomplete: 'off' });
    var form = h('form', { id: 'token-form' }, input, h('button', { text: 'Use token', type: 'submit' }));
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      state.token = input.value.trim();
      if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token);
      renderAuth(); render();
    });
    box.appendChild(form);
  }

  // ---------------------------------------------------------------- routing

  function parseHash() {
    var hash = location.hash.replace(/^#\/?/, '');
    var q = hash.indexOf('?');
    var path = q < 0 ? hash : hash.slice(0, q);
    var params = new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
    var parts = path.split('/').filter(Boolean);
    return { parts: parts, params: params };
  }
  function go(hash) { if (location.hash === hash) render(); else location.hash = hash; }

  function render() {
    var r = parseHash();
    var name = r.parts[0] || 'overview';
    if (name === 'jobs' && r.parts[1]) name = 'job';
    state.view = name;
    document.querySelectorAll('nav a').forEach(function (a) { a.classList.toggle('active', a.getAttribute('data-view') === (name === 'job' ? 'jobs' : name)); });
    var main = $('view');
    main.textContent = '';
    main.setAttribute('data-view', name);
    if (name === 'overview') renderOverview(main);
    else if (name === 'queues') renderQueues(main);
    else if (name === 'workers') renderWorkers(main);
    else if (name === 'jobs') renderJobs(main, r.params, false);
    else if (name === 'failed') renderJobs(main, r.params, true);
    else if (name === 'job') renderJob(main, Number(r.parts[1]));
    else main.appendChild(h('p', { text: 'Unknown page.' }));
  }

  // ---------------------------------------------------------------- overview

  function sumKinds(field) {
    var s = state.stats, n = 0;
    if (!s) return 0;
    s.kinds.forEach(function (k) { n += k[field] || 0; });
    return n;
  }
  function card(id, label, value, cls) {
    return h('div', { className: 'card' }, h('div', { className: 'label', text: label }), h('div', { className: 'value ' + (cls || ''), id: id, text: value }));
  }
  function renderOverview(main) {
    main.appendChild(h('h2', { text: 'Overview' }));
    main.appendChild(h('div', { className: 'cards', id: 'cards' }));
    main.appendChild(h('div', { className: 'panel' },
      h('div', { className: 'legend' }, h('span', null, h('i', { style: 'background:#168a4a' }), 'done / s'),
        h('span', null, h('i', { style: 'background:#c8322b' }), 'failed / s'), h('span', { className: 'muted', id: 'chart-span', text: 'last 10 minutes' })),
      h('canvas', { id: 'chart', width: 1200, height: 220 })));
    main.appendChild(h('h3', { text: 'Busiest queues' }));
    main.appendChild(h('div', { className: 'panel' }, h('table', { id: 'top-kinds' })));
    updateOverview();
  }
  function updateTopKinds() {
    var table = $('top-kinds');
    if (!table || !state.stats) return;
    table.textContent = '';
    table.appendChild(h('thead', null, h('tr', null, ['kind', 'queued', 'running', 'oldest', 'done/s', 'failed', 'workers'].map(function (t, i) {
      return h('th', { className: i > 0 ? 'num' : '', text: t });
    }))));
    var body = h('tbody');
    state.stats.kinds.slice(0, 6).forEach(function (k) {
      body.appendChild(h('tr', null,
        h('td', null, h('a', { href: '#/jobs?kind=' + encodeURIComponent(k.kind), text: k.kind }), k.paused ? h('span', { className: 'tag paused', text: 'paused' }) : null),
        h('td', { className: 'num', text: fmtInt(k.queued) }), h('td', { className: 'num', text: fmtInt(k.running) }),
        h('td', { className: 'num', text: fmtAge(k.oldestQueuedMs) }), h('td', { className: 'num', text: fmtInt(k.donePerSec) }),
        h('td', { className: 'num', text: fmtInt(k.failed) }), h('td', { className: 'num', text: fmtInt(k.workers) })));
    });
    table.appendChild(body);
  }
  function updateOverview() {
    var cards = $('cards');
    if (!cards) return;
    var s = state.stats;
    cards.textContent = '';
    if (!s) { cards.appendChild(h('p', { className: 'muted', text: 'waiting for the first stats tick...' })); drawChart(); return; }
    var journal = s.journal ? (s.journalHealthy ? 'ok' : 'UNAVAILABLE') : 'off';
    cards.appendChild(card('c-done', 'done / s', fmtInt(s.rate.done), 'ok'));
    cards.appendChild(card('c-failed', 'failed / s', fmtInt(s.rate.failed), s.rate.failed > 0 ? 'bad' : ''));
    cards.appendChild(card('c-queued', 'queued', fmtInt(s.totals.queued)));
    cards.appendChild(card('c-delayed', 'delayed', fmtInt(sumKinds('delayed'))));
    cards.appendChild(card('c-running', 'running', fmtInt(s.totals.running)));
    cards.appendChild(card('c-workers', 'workers', fmtInt(s.connections.workers)));
    cards.appendChild(card('c-slots', 'busy slots', fmtInt(s.slots.busy) + ' / ' + fmtInt(s.slots.total)));
    cards.appendChild(card('c-clients', 'clients', fmtInt(s.connections.clients)));
    cards.appendChild(card('c-kinds', 'kinds', fmtInt(s.kindCount)));
    cards.appendChild(card('c-journal', 'journal', journal + (s.journal ? ' · ' + fmtBytes(s.journal.bytes) : ''), journal === 'UNAVAILABLE' ? 'bad' : ''));
    cards.appendChild(card('c-ready', 'ready', s.ready.ready ? 'yes' : s.ready.reason, s.ready.ready ? 'ok' : 'bad'));
    drawChart();
    updateTopKinds();
  }
  function spanText(sec) { return sec >= 120 ? Math.round(sec / 60) + 'm' : Math.round(sec) + 's'; }
  function drawChart() {
    var c = $('chart');
    if (!c) return;
    var dpr = window.devicePixelRatio || 1;
    var w = c.clientWidth || 1200, ht = c.clientHeight || 220;
    c.width = Math.round(w * dpr); c.height = Math.round(ht * dpr);
    var g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, ht);
    // Up to 10 minutes; a shorter history fills the width (at least one minute).
    var n = Math.max(60, Math.min(600, state.done.length)), left = 44, bottom = ht - 18, top = 8, right = w - 8;
    var span = $('chart-span');
    if (span) span.textContent = 'last ' + spanText(n);
    var max = 1;
    state.done.forEach(function (v) { if (v > max) max = v; });
    state.failed.forEach(function (v) { if (v > max) max = v; });
    var step = Math.pow(10, Math.floor(Math.log10(max)));
    max = Math.ceil(max / step) * step;
    g.strokeStyle = '#e3e6ec'; g.fillStyle = '#667085'; g.font = '11px system-ui, sans-serif'; g.lineWidth = 1;
    for (var i = 0; i <= 4; i++) {
      var y = bottom - (bottom - top) * i / 4;
      g.beginPath(); g.moveTo(left, y); g.lineTo(right, y); g.stroke();
      g.fillText(String(Math.round(max * i / 4)), 4, y + 4);
    }
    ['-' + spanText(n), '-' + spanText(n / 2), 'now'].forEach(function (label, j) { g.fillText(label, left + (right - left) * j / 2 - (j === 2 ? 22 : j === 1 ? 10 : 0), ht - 4); });
    function line(series, color) {
      series = series.slice(-n);
      var off = n - series.length;
      g.strokeStyle = color; g.lineWidth = 1.6; g.beginPath();
      series.forEach(function (v, k) {
        var x = left + (right - left) * (off + k) / (n - 1);
        var y2 = bottom - (bottom - top) * v / max;
        if (k === 0) g.moveTo(x, y2); else g.lineTo(x, y2);
      });
      g.stroke();
    }
    line(state.done, '#168a4a');
    line(state.failed, '#c8322b');
  }

  // ---------------------------------------------------------------- queues

  function renderQueues(main) {
    main.appendChild(h('h2', { text: 'Queues' }));
    main.appendChild(h('div', { className: 'panel' }, h('table', { id: 'kinds' })));
    main.appendChild(h('p', { className: 'muted', id: 'kinds-note' }));
    updateQueues();
  }
  function updateQueues() {
    var table = $('kinds');
    if (!table) return;
    var s = state.stats;
    table.textContent = '';
    table.appendChild(h('thead', null, h('tr', null, ['kind', 'queued', 'delayed', 'running', 'oldest', 'done/s', 'in/s', 'done', 'failed', 'workers', '', ''].map(function (t, i) {
      return h('th', { className: i > 0 && i < 10 ? 'num' : '', text: t });
    }))));
    var body = h('tbody');
    (s ? s.kinds : []).forEach(function (k) {
      body.appendChild(h('tr', { 'data-kind': k.kind },
        h('td', null, h('a', { href: '#/jobs?kind=' + encodeURIComponent(k.kind), text: k.kind }), k.paused ? h('span', { className: 'tag paused', text: 'paused' }) : null),
        h('td', { className: 'num', text: fmtInt(k.queued) }), h('td', { className: 'num', text: fmtInt(k.delayed) }),
        h('td', { className: 'num', text: fmtInt(k.running) }), h('td', { className: 'num', text: fmtAge(k.oldestQueuedMs) }),
        h('td', { className: 'num', text: fmtInt(k.donePerSec) }), h('td', { className: 'num', text: fmtInt(k.submittedPerSec) }),
        h('td', { className: 'num', text: fmtInt(k.done) }), h('td', { className: 'num', text: fmtInt(k.failed) }),
        h('td', { className: 'num', text: fmtInt(k.workers) }),
        h('td', null, k.paused
          ? button('Resume', 'resume', function () { act(api('POST', '/api/kinds/' + encodeURIComponent(k.kind) + '/resume'), k.kind + ' resumed').then(refreshStatsSoon); })
          : button('Pause', 'pause', function () { act(api('POST', '/api/kinds/' + encodeURIComponent(k.kind) + '/pause'), k.kind + ' paused').then(refreshStatsSoon); })),
        h('td', null, button('Purge', 'purge', function () {
          confirmDialog('Cancel every QUEUED job of "' + k.kind + '" (' + fmtInt(k.queued) + ' now)? Running jobs are not touched.', k.kind).then(function (yes) {
            if (!yes) return;
            act(api('DELETE', '/api/kinds/' + encodeURIComponent(k.kind) + '/jobs?state=QUEUED&confirm=' + encodeURIComponent(k.kind))).then(function (r) { toast(r.purged + ' job(s) purged from ' + k.kind); });
          });
        }, { danger: true }))));
    });
    table.appendChild(body);
    var note = $('kinds-note');
    if (note && s) note.textContent = s.kindCount > s.kinds.length ? 'Showing the ' + s.kinds.length + ' busiest of ' + fmtInt(s.kindCount) + ' kinds.' : '';
    if (s && s.kinds.length === 0) body.appendChild(h('tr', null, h('td', { colspan: 12, className: 'muted', text: 'No kinds yet: submit a job or start a worker.' })));
  }
  /** Pause/resume show on the next stats tick; ask now so the button flips at once. */
  function refreshStatsSoon() {
    api('GET', '/api/kinds?limit=100').then(function (r) {
      if (!state.stats) return;
      state.stats.kinds = r.kinds;
      state.stats.kindCount = r.total;
      if (state.view === 'queues') updateQueues();
    });
  }

  // ---------------------------------------------------------------- workers

  function renderWorkers(main) {
    main.appendChild(h('h2', { text: 'Workers' }));
    main.appendChild(h('div', { className: 'panel' }, h('table', { id: 'workers' })));
    main.appendChild(h('p', { className: 'muted', id: 'workers-note' }));
    fetchWorkers();
  }
  function fetchWorkers() {
    state.workersFetchedAt = Date.now();
    api('GET', '/api/workers?limit=100').then(function (r) { if (state.view === 'workers') drawWorkers(r); }, function () {});
  }
  function drawWorkers(r) {
    var table = $('workers');
    if (!table) return;
    table.textContent = '';
    table.appendChild(h('thead', null, h('tr', null, ['name', 'id', 'capabilities', 'running / concurrency', 'heartbeat', 'done', 'failed', 'state', '', ''].map(function (t, i) {
      return h('th', { className: i === 5 || i === 6 ? 'num' : '', text: t });
    }))));
    var body = h('tbody');
    r.workers.forEach(function (w) {
      var pct = w.concurrency ? Math.min(100, Math.round(100 * w.running / w.concurrency)) : 0;
      body.appendChild(h('tr', { 'data-worker': w.name },
        h('td', { text: w.name }), h('td', { className: 'muted', text: w.id }),
        h('td', { className: 'wrap' }, w.capabilities.map(function (c) { return h('span', { className: 'tag', text: c }); })),
        h('td', null, h('span', { className: 'bar' }, h('div', { style: 'width:' + pct + '%' })), w.running + ' / ' + w.concurrency),
        h('td', { text: fmtAge(w.heartbeatAgeMs) }),
        h('td', { className: 'num', text: fmtInt(w.done) }), h('td', { className: 'num', text: fmtInt(w.failed) }),
        h('td', null, w.draining ? h('span', { className: 'tag paused', text: 'draining' }) : h('span', { className: 'tag', text: 'active' }), w.stuck ? h('span', { className: 'tag paused', text: w.stuck + ' stuck' }) : null),
        h('td', null, button('Drain', 'drain', function () { act(api('POST', '/api/workers/' + encodeURIComponent(w.id) + '/drain'), w.name + ' draining').then(fetchWorkers); }, { disabled: w.draining })),
        h('td', null, button('Disconnect', 'disconnect', function () {
          confirmDialog('Disconnect ' + w.name + ' now? Its ' + w.running + ' running job(s) go back to the queue as after a crash.').then(function (yes) {
            if (yes) act(api('DELETE', '/api/workers/' + encodeURIComponent(w.id)), w.name + ' disconnected').then(fetchWorkers);
          });
        }, { danger: true }))));
    });
    if (r.workers.length === 0) body.appendChild(h('tr', null, h('td', { colspan: 10, className: 'muted', text: 'No worker connected.' })));
    table.appendChild(body);
    $('workers-note').textContent = r.total > r.workers.length ? 'Showing ' + r.workers.length + ' of ' + fmtInt(r.total) + ' workers.' : '';
  }

  // ---------------------------------------------------------------- jobs

  function renderJobs(main, params, failedView) {
    var q = { state: failedView ? 'FAILED' : (params.get('state') || ''), kind: params.get('kind') || '' };
    state.jobs.query = q;
    state.jobs.cursors = [0];
    main.appendChild(h('h2', { text: failedView ? 'Failed jobs' : 'Jobs' }));
    var idInput = h('input', { id: 'job-search', placeholder: 'job id', size: 10, inputmode: 'numeric' });
    var search = h('form', { id: 'job-search-form' }, idInput, h('button', { text: 'Open', type: 'submit' }));
    search.addEventListener('submit', function (ev) { ev.preventDefault(); var id = idInput.value.trim(); if (/^\d+$/.test(id)) go('#/jobs/' + id); });
    var stateSel = h('select', { id: 'state-filter', 'aria-label': 'state' }, ['', 'QUEUED', 'RUNNING', 'DONE', 'FAILED', 'CANCELLED'].map(function (s) {
      return h('option', { value: s, text: s || 'any state', selected: s === q.state });
    }));
    if (failedView) stateSel.disabled = true;
    var kindInput = h('input', { id: 'kind-filter', placeholder: 'kind', value: q.kind, size: 12, list: 'kind-list' });
    var kinds = h('datalist', { id: 'kind-list' }, (state.stats ? state.stats.kinds : []).map(function (k) { return h('option', { value: k.kind }); }));
    var apply = function () {
      var p = new URLSearchParams();
      if (!failedView && stateSel.value) p.set('state', stateSel.value);
      if (kindInput.value.trim()) p.set('kind', kindInput.value.trim());
      var qs = p.toString();
      go('#/' + (failedView ? 'failed' : 'jobs') + (qs ? '?' + qs : ''));
    };
    stateSel.addEventListener('change', apply);
    kindInput.addEventListener('change', apply);
    var controls = h('div', { className: 'controls' }, search, stateSel, kindInput, kinds);
    if (failedView) {
      controls.appendChild(button('Retry all failed' + (q.kind ? ' of ' + q.kind : ''), 'retry-all', function () {
        var qs = 'state=FAILED' + (q.kind ? '&kind=' + encodeURIComponent(q.kind) : '');
        act(api('POST', '/api/jobs/retry?' + qs)).then(function (r) { toast(r.retried + ' job(s) queued again'); fetchJobs(); });
      }));
    }
    main.appendChild(controls);
    main.appendChild(h('div', { className: 'panel' }, h('table', { id: 'jobs' })));
    main.appendChild(h('div', { className: 'controls', id: 'pager' }));
    fetchJobs();
  }
  function fetchJobs() {
    var j = state.jobs;
    var q = j.query;
    var after = j.cursors[j.cursors.length - 1];
    var p = new URLSearchParams({ limit: String(PAGE) });
    if (q.state) p.set('state', q.state);
    if (q.kind) p.set('kind', q.kind);
    if (after) p.set('after', String(after));
    j.lastFetch = Date.now();
    var view = state.view;
    return api('GET', '/api/jobs?' + p.toString()).then(function (page) {
      if (state.view !== view) return;
      j.page = page;
      drawJobs(page);
    }, function (err) { toast((err.code || 'ERROR') + ': ' + err.message, true); });
  }
  function drawJobs(page) {
    var table = $('jobs');
    if (!table) return;
    table.textContent = '';
    table.appendChild(h('thead', null, h('tr', null, ['id', 'kind', 'state', 'attempts', 'worker', 'created', 'run time', 'outcome', ''].map(function (t) { return h('th', { text: t }); }))));
    var body = h('tbody');
    page.jobs.forEach(function (job) { body.appendChild(jobRow(job)); });
    if (page.jobs.length === 0) body.appendChild(h('tr', null, h('td', { colspan: 9, className: 'muted', text: 'No jobs match.' })));
    table.appendChild(body);
    var pager = $('pager');
    pager.textContent = '';
    var j = state.jobs;
    pager.appendChild(h('span', { className: 'muted', id: 'jobs-total', text: fmtInt(page.total) + ' matching' }));
    pager.appendChild(button('Newer', 'newer', function () { j.cursors.pop(); fetchJobs(); }, { write: false, disabled: j.cursors.length <= 1 }));
    pager.appendChild(button('Older', 'older', function () { j.cursors.push(page.next); fetchJobs(); }, { write: false, disabled: !page.next }));
  }
  function jobRow(job) {
    var run = job.startedAt && job.finishedAt ? fmtAge(job.finishedAt - job.startedAt) : '-';
    var outcome = job.state === 'FAILED' ? (job.error || '') : job.state === 'DONE' ? fmtBytes(job.resultBytes || 0) + ' result' : job.notBefore ? 'not before ' + fmtTime(job.notBefore) : '';
    var actions = h('td');
    if (job.state === 'FAILED' || job.state === 'CANCELLED') actions.appendChild(button('Retry', 'retry', function () { act(api('POST', '/api/jobs/' + job.id + '/retry'), 'job ' + job.id + ' queued again').then(fetchJobs); }));
    if (job.state === 'QUEUED' || job.state === 'RUNNING') actions.appendChild(button('Cancel', 'cancel', function () { act(api('DELETE', '/api/jobs/' + job.id), 'job ' + job.id + ' cancelled').then(fetchJobs); }, { danger: true }));
    return h('tr', { 'data-job-id': job.id },
      h('td', null, h('a', { href: '#/jobs/' + job.id, text: String(job.id) })),
      h('td', { text: job.kind }),
      h('td', { className: 'state-cell' }, stateBadge(job.state)),
      h('td', { className: 'num', text: job.attempts + ' / ' + (job.maxRetries + 1) }),
      h('td', { text: job.worker || '-' }),
      h('td', { text: fmtTime(job.createdAt) }),
      h('td', { text: run }),
      h('td', { className: 'wrap', text: outcome.length > 160 ? outcome.slice(0, 160) + '…' : outcome }),
      actions);
  }
  /** Live: update shown rows now; refetch the first page (at most once a second) when it may have changed. */
  function onJobEvents(rows) {
    if (state.view === 'job') {
      rows.forEach(function (r) { if (r[0] === state.detailId) scheduleDetail(); });
      return;
    }
    if (state.view !== 'jobs' && state.view !== 'failed') return;
    var j = state.jobs, touched = false;
    rows.forEach(function (r) {
      var tr = document.querySelector('tr[data-job-id="' + r[0] + '"] .state-cell');
      if (tr) { tr.textContent = ''; tr.appendChild(stateBadge(r[2])); touched = true; }
      else if (j.cursors.length === 1 && (!j.query.kind || j.query.kind === r[1])) touched = true;
    });
    if (touched) scheduleJobs();
  }
  function scheduleJobs() {
    var j = state.jobs;
    if (j.refetchTimer) return;
    var wait = Math.max(0, 1000 - (Date.now() - j.lastFetch));
    j.refetchTimer = setTimeout(function () { j.refetchTimer = 0; if (state.view === 'jobs' || state.view === 'failed') fetchJobs(); }, wait);
  }

  // ---------------------------------------------------------------- one job

  var detailTimer = 0;
  function scheduleDetail() {
    if (detailTimer) return;
    detailTimer = setTimeout(function () { detailTimer = 0; if (state.view === 'job') fetchDetail(); }, 200);
  }
  function renderJob(main, id) {
    state.detailId = id;
    main.appendChild(h('h2', null, 'Job ', h('span', { text: String(id) }), ' ', h('span', { id: 'job-state' })));
    main.appendChild(h('div', { id: 'job-detail' }, h('p', { className: 'muted', text: 'loading...' })));
    fetchDetail();
  }
  function fetchDetail() {
    var id = state.detailId;
    api('GET', '/api/jobs/' + id).then(function (job) { if (state.view === 'job' && state.detailId === id) drawDetail(job); }, function (err) {
      var box = $('job-detail');
      if (box) { box.textContent = ''; box.appendChild(h('p', { className: 'muted', text: err.code === 'NOT_FOUND' ? 'No job ' + id + ' (never submitted, or its result has expired).' : err.code + ': ' + err.message })); }
    });
  }
  function bytesView(v, what) {
    if (!v) return h('p', { className: 'muted', text: what === 'arguments' ? 'not kept once the job is DONE' : '-' });
    var body;
    if (v.json !== undefined && typeof v.json === 'object' && v.json !== null) body = JSON.stringify(v.json, null, 2);
    else if (v.text !== undefined) body = v.text;
    else if (v.hex !== undefined) body = v.hex.replace(/(..)/g, '$1 ').trim();
    else body = v.base64 !== undefined ? 'base64: ' + v.base64 : '';
    var shown = body.length > 20000 ? body.slice(0, 20000) + '…' : body;
    return h('div', null, h('span', { className: 'muted', text: fmtBytes(v.bytes) + (v.hex !== undefined ? ', hex' : '') + (v.truncated ? ', first 4 KiB shown' : '') }), h('pre', { text: shown }));
  }
  function drawDetail(job) {
    var box = $('job-detail');
    if (!box) return;
    var st = $('job-state');
    st.textContent = ''; st.appendChild(stateBadge(job.state));
    box.textContent = '';
    var actions = h('div', { className: 'controls' },
      button('Retry', 'retry', function () { act(api('POST', '/api/jobs/' + job.id + '/retry'), 'queued again').then(fetchDetail); }, { disabled: !(job.state === 'FAILED' || job.state === 'CANCELLED') }),
      button('Cancel', 'cancel', function () { act(api('DELETE', '/api/jobs/' + job.id), 'cancelled').then(fetchDetail); }, { danger: true, disabled: !(job.state === 'QUEUED' || job.state === 'RUNNING') }),
      job.notBefore ? button('Run now', 'promote', function () { act(api('POST', '/api/jobs/' + job.id + '/promote'), 'runnable now').then(fetchDetail); }) : null);
    box.appendChild(actions);
    var dl = h('dl');
    function row(k, v) { dl.appendChild(h('dt', { text: k })); dl.appendChild(h('dd', null, v)); }
    row('kind', h('a', { href: '#/jobs?kind=' + encodeURIComponent(job.kind), text: job.kind }));
    row('state', job.state);
    row('priority', String(job.priority));
    row('attempts', job.attempts + ' of ' + (job.maxRetries + 1));
    row('timeout', fmtAge(job.timeoutMs));
    row('created', new Date(job.createdAt).toLocaleString());
    if (job.startedAt) row('last start', new Date(job.startedAt).toLocaleString());
    if (job.finishedAt) row('finished', new Date(job.finishedAt).toLocaleString());
    if (job.notBefore) row('not before', new Date(job.notBefore).toLocaleString());
    if (job.worker) row('worker', job.worker);
    if (job.key) row('key', job.key);
    box.appendChild(h('div', { className: 'panel' }, dl));
    box.appendChild(h('h3', { text: 'Attempts' }));
    var attempts = h('table', { id: 'attempts' }, h('thead', null, h('tr', null, ['#', 'worker', 'started', 'duration', 'outcome'].map(function (t) { return h('th', { text: t }); }))));
    var tb = h('tbody');
    var history = job.history || (job.attempts > 0 ? [{ attempt: job.attempts, worker: job.worker, startedAt: job.startedAt, finishedAt: job.finishedAt, error: job.error, last: true }] : []);
    history.forEach(function (a) {
      var outcome = a.error || (a.last ? (job.state === 'DONE' ? 'done' : job.state === 'RUNNING' ? 'running' : job.state.toLowerCase()) : a.outcome || '');
      tb.appendChild(h('tr', null, h('td', { text: String(a.attempt) }), h('td', { text: a.worker || '-' }), h('td', { text: fmtTime(a.startedAt) }),
        h('td', { text: a.startedAt && a.finishedAt ? fmtAge(a.finishedAt - a.startedAt) : '-' }), h('td', { className: 'wrap', text: outcome })));
    });
    if (history.length === 0) tb.appendChild(h('tr', null, h('td', { colspan: 5, className: 'muted', text: 'not started yet' })));
    attempts.appendChild(tb);
    box.appendChild(h('div', { className: 'panel' }, attempts));
    if (!job.history && job.attempts > 1) box.appendChild(h('p', { className: 'muted', text: 'The scheduler reports the last attempt only.' }));
    if (job.state === 'FAILED') { box.appendChild(h('h3', { text: 'Error' })); box.appendChild(h('pre', { id: 'job-error', text: job.error || '' })); }
    box.appendChild(h('h3', { text: 'Arguments' }));
    box.appendChild(bytesView(job.args, 'arguments'));
    if (job.state === 'DONE') { box.appendChild(h('h3', { text: 'Result' })); box.appendChild(h('div', { id: 'job-result' }, bytesView(job.result, 'result'))); }
  }

  // ---------------------------------------------------------------- live

  function connect() {
    var pill = $('live');
    var es = new EventSource('/api/events');
    es.addEventListener('open', function () { pill.textContent = 'live'; pill.className = 'pill live'; });
    es.addEventListener('error', function () { pill.textContent = 'reconnecting'; pill.className = 'pill down'; });
    es.addEventListener('hello', function (ev) {
      var hello = JSON.parse(ev.data);
      if (hello.tokenRequired !== state.info.tokenRequired) { state.info.tokenRequired = hello.tokenRequired; renderAuth(); render(); }
    });
    es.addEventListener('stats', function (ev) {
      var s = JSON.parse(ev.data);
      state.stats = s;
      if (s.rate.second !== state.second) {
        state.second = s.rate.second;
        state.done.push(s.rate.done); state.failed.push(s.rate.failed);
        if (state.done.length > 600) { state.done.shift(); state.failed.shift(); }
      }
      $('version').textContent = state.info.serverVersion ? 'v' + state.info.serverVersion : '';
      if (state.view === 'overview') updateOverview();
      else if (state.view === 'queues') updateQueues();
      else if (state.view === 'workers' && Date.now() - state.workersFetchedAt > 2000) fetchWorkers();
    });
    es.addEventListener('jobs', function (ev) { onJobEvents(JSON.parse(ev.data)); });
    es.addEventListener('lost', function () { if (state.view === 'jobs' || state.view === 'failed') scheduleJobs(); });
    es.addEventListener('workers', function () { if (state.view === 'workers') fetchWorkers(); });
  }

  function start() {
    window.addEventListener('hashchange', render);
    api('GET', '/api/info').then(function (info) { state.info = info; }, function () {}).then(function () {
      renderAuth();
      render();
      api('GET', '/api/stats/history').then(function (hist) {
        state.done = hist.done.concat(state.done).slice(-600);
        state.failed = hist.failed.concat(state.failed).slice(-600);
        drawChart();
      }, function () {});
      connect();
    });
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();
`;
