/* gsmgw console: the only script of ours. Loaded from a file (the CSP allows no
   inline script); adds the CSRF token to htmx requests, keeps the overview live
   over Server-Sent Events, draws the charts with uPlot, asks before dangerous
   forms. Everything the server sends is already escaped HTML. */
(function () {
  'use strict';
  var prefix = document.body.getAttribute('data-prefix') || '/ui/';
  var tokenMeta = document.querySelector('meta[name="csrf-token"]');

  document.addEventListener('htmx:configRequest', function (e) {
    if (tokenMeta && tokenMeta.content) { e.detail.headers['X-CSRF-Token'] = tokenMeta.content; }
  });
  // A 401 from an htmx request: the session ended.
  document.addEventListener('htmx:responseError', function (e) {
    if (e.detail.xhr && e.detail.xhr.status === 401) { window.location.href = prefix + 'login?why=expired'; }
  });

  document.addEventListener('submit', function (e) {
    var msg = e.target.getAttribute && e.target.getAttribute('data-confirm');
    if (msg && !window.confirm(msg)) { e.preventDefault(); }
  }, true);

  // --- live overview ---------------------------------------------------------
  var targets = document.querySelectorAll('[data-live]');
  var status = document.getElementById('live-status');
  function setStatus(text, on) {
    if (!status) { return; }
    status.textContent = text;
    status.classList.toggle('on', !!on);
  }
  if (targets.length && window.EventSource) {
    var es = new EventSource(prefix + 'events');
    targets.forEach(function (el) {
      es.addEventListener(el.getAttribute('data-live'), function (e) {
        el.innerHTML = e.data;
        setStatus('live', true);
      });
    });
    es.addEventListener('open', function () { setStatus('live', true); });
    es.addEventListener('signedout', function () {
      es.close();
      window.location.href = prefix + 'login?why=expired';
    });
    es.addEventListener('error', function () {
      setStatus(es.readyState === EventSource.CLOSED ? 'live updates stopped: reload the page' : 'reconnecting…', false);
    });
  } else if (status) {
    setStatus('', false);
  }

  // --- charts -----------------------------------------------------------------
  var charts = document.querySelectorAll('[data-chart]');
  var palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];
  var plots = {};
  function draw(data) {
    if (!window.uPlot) { return; }
    charts.forEach(function (el) {
      var key = el.getAttribute('data-chart');
      var d = data[key];
      if (!d) { return; }
      var sims = Object.keys(d.series).sort();
      var rows = [d.x].concat(sims.map(function (s) { return d.series[s]; }));
      var width = Math.max(200, el.clientWidth || 300);
      if (plots[key] && plots[key].series.length === sims.length + 1) {
        plots[key].setData(rows);
        return;
      }
      if (plots[key]) { plots[key].destroy(); }
      el.textContent = '';
      plots[key] = new window.uPlot({
        width: width, height: 180,
        series: [{}].concat(sims.map(function (s, i) {
          return { label: s, stroke: palette[i % palette.length], width: 2, points: { show: false } };
        })),
        axes: [{}, { size: 40 }],
        scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
        legend: { live: false }
      }, rows, el);
    });
  }
  function loadCharts() {
    fetch(prefix + 'charts.json', { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { draw(data); } })
      .catch(function () {});
  }
  if (charts.length) {
    loadCharts();
    window.setInterval(loadCharts, 60000);
    var resizeTimer = null;
    window.addEventListener('resize', function () {
      window.clearTimeout(resizeTimer);
      resizeTimer = window.setTimeout(function () {
        Object.keys(plots).forEach(function (k) {
          var el = document.querySelector('[data-chart="' + k + '"]');
          if (el) { plots[k].setSize({ width: Math.max(200, el.clientWidth), height: 180 }); }
        });
      }, 200);
    });
  }
})();
