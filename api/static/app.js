/* yujing monitoring-centre dashboard: risk map of Jiangxi's cities, live alert queue, sensor chart.
 * Plain ES2017, no build step. ECharts 4.9.0 and the Jiangxi map come from the API's /dashboard/vendor/
 * (installed from npm), never a CDN. State is exposed as window.yujing for tests and debugging. */
(function () {
  'use strict';

  var COLOURS = { red: '#ef4444', orange: '#f97316', yellow: '#facc15', blue: '#3b82f6' };
  var RANK = { blue: 1, yellow: 2, orange: 3, red: 4 };
  var NONE = '#1e3a5f';
  var I18N = {
    zh: {
      title: '江西省安全生产风险监测预警', keyLabel: 'API 密钥', login: '登录', logout: '退出',
      mapTitle: '四色风险图', dynamic: '动态', live: '实时预警', assessed: '静态评估',
      queueTitle: '实时预警队列', grade: '级别', place: '地点', finding: '预警内容',
      state: '状态', started: '开始', noAlerts: '暂无未处理预警', chartTitle: '传感器实时曲线',
      ack: '确认', acked: '已确认', online: '实时', offline: '未连接', badKey: '密钥无效或已停用',
      red: '红色', orange: '橙色', yellow: '黄色', blue: '蓝色', openAlerts: '未处理预警',
      firing: '报警中', acknowledged: '已确认', latched: '待复位', resolved: '已解除', closed: '已销号',
      readings: '读数'
    },
    en: {
      title: 'Jiangxi work-safety risk monitoring', keyLabel: 'API key', login: 'Log in', logout: 'Log out',
      mapTitle: 'Four-colour risk map', dynamic: 'dynamic', live: 'live warnings', assessed: 'assessed',
      queueTitle: 'Live alert queue', grade: 'Grade', place: 'Place', finding: 'Finding',
      state: 'State', started: 'Started', noAlerts: 'No open alerts', chartTitle: 'Sensor readings',
      ack: 'Acknowledge', acked: 'Acknowledged', online: 'live', offline: 'offline', badKey: 'invalid or revoked key',
      red: 'red', orange: 'orange', yellow: 'yellow', blue: 'blue', openAlerts: 'open alerts',
      firing: 'firing', acknowledged: 'acknowledged', latched: 'latched', resolved: 'resolved', closed: 'closed',
      readings: 'readings'
    }
  };

  var state = {
    key: sessionStorage.getItem('yujing.key') || '',
    lang: localStorage.getItem('yujing.lang') || 'zh',
    mode: 'dynamic', riskmap: null, alerts: [], sensors: [], sensor: null, ws: null, sensorWs: null,
    chart: null, map: null, series: [], setpoints: []
  };
  window.yujing = state;

  function t(k) { return (I18N[state.lang] || I18N.zh)[k] || k; }
  function $(id) { return document.getElementById(id); }

  function applyLang() {
    document.documentElement.lang = state.lang === 'zh' ? 'zh-CN' : 'en';
    document.querySelectorAll('[data-i18n]').forEach(function (el) { el.textContent = t(el.dataset.i18n); });
    $('lang').value = state.lang;
    if (state.riskmap) { drawMap(); }
    renderAlerts();
  }

  function api(path, options) {
    options = options || {};
    options.headers = Object.assign({ 'X-API-Key': state.key }, options.headers || {});
    if (options.body && typeof options.body !== 'string') {
      options.body = JSON.stringify(options.body);
      options.headers['Content-Type'] = 'application/json';
    }
    return fetch(path, options).then(function (r) {
      if (r.status === 401) { logout(t('badKey')); throw new Error('unauthorised'); }
      if (!r.ok) { return r.text().then(function (txt) { throw new Error(r.status + ' ' + txt); }); }
      return r.json();
    });
  }

  // ------------------------------------------------------------------ map
  function cityData() {
    var regions = (state.riskmap && state.riskmap.regions) || [];
    return regions.filter(function (r) { return r.level === 'city'; }).map(function (r) {
      var colour = r[state.mode];
      return {
        name: r.name, code: r.id, colour: colour || null, value: colour ? RANK[colour] : 0,
        open: r.open_alerts, byGrade: r.open_by_grade,
        itemStyle: { areaColor: colour ? COLOURS[colour] : NONE }
      };
    });
  }

  function drawMap() {
    if (!state.map) { return; }
    state.map.setOption({
      tooltip: {
        trigger: 'item',
        formatter: function (p) {
          var d = p.data || {};
          return p.name + '<br>' + (d.colour ? t(d.colour) : '—') + ' · ' + t('openAlerts') + ' ' + (d.open || 0);
        }
      },
      series: [{
        type: 'map', map: 'jiangxi', roam: false, label: { show: true, color: '#0b1726', fontSize: 11 },
        itemStyle: { borderColor: '#0b1726', areaColor: NONE }, emphasis: { label: { show: true } },
        data: cityData()
      }]
    }, false);
  }

  function loadRiskmap() {
    return api('/api/v1/riskmap').then(function (m) { state.riskmap = m; drawMap(); });
  }

  // ------------------------------------------------------------------ alert queue
  function renderAlerts() {
    var tbody = document.querySelector('#alerts tbody');
    if (!tbody) { return; }
    tbody.innerHTML = '';
    state.alerts.forEach(function (a) {
      var tr = document.createElement('tr');
      tr.dataset.alertId = a.id;
      // names from the API (alerts.render.display): 南昌市 某煤矿 采煤工作面 · 甲烷 1.62%VOL ≥ 断电值 1.5%VOL
      var shown = (a.display || {})[state.lang] || {};
      var cells = [
        '<span class="badge ' + a.grade + '">' + t(a.grade) + '</span>',
        esc(shown.place || a.enterprise || ''),
        esc(shown.what || (a.alert_key + ' ' + (a.rule || ''))),
        t(a.state),
        new Date(a.started_us / 1000).toLocaleString(state.lang === 'zh' ? 'zh-CN' : 'en-GB')
      ];
      tr.innerHTML = cells.map(function (c) { return '<td>' + c + '</td>'; }).join('') + '<td></td>';
      var button = document.createElement('button');
      button.className = 'ack';
      if (a.acked_us) { button.textContent = t('acked'); button.disabled = true; }
      else {
        button.textContent = t('ack');
        button.addEventListener('click', function () { acknowledge(a.id, button); });
      }
      tr.lastChild.appendChild(button);
      tbody.appendChild(tr);
    });
    $('alerts-empty').hidden = state.alerts.length > 0;
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }

  function loadAlerts() {
    return api('/api/v1/alerts?open=true&limit=200').then(function (list) { state.alerts = list; renderAlerts(); });
  }

  function acknowledge(id, button) {
    button.disabled = true;
    return api('/api/v1/alerts/' + id + '/acknowledge', { method: 'POST', body: { comment: 'dashboard' } })
      .then(refresh)
      .catch(function (e) { button.disabled = false; console.error(e); });
  }

  // ------------------------------------------------------------------ sensor chart
  function loadSensors() {
    return api('/api/v1/sensors?active=true&limit=1000').then(function (list) {
      state.sensors = list;
      var select = $('sensor');
      select.innerHTML = '';
      list.forEach(function (s) {
        var o = document.createElement('option');
        o.value = s.id; o.textContent = s.enterprise + ' / ' + s.code + ' (' + s.kind + ', ' + s.unit + ')';
        select.appendChild(o);
      });
      if (list.length) { selectSensor(list[0].id); }
    });
  }

  function selectSensor(id) {
    state.sensor = Number(id);
    $('sensor').value = String(id);
    var end = new Date(), start = new Date(end.getTime() - 3600 * 1000);
    var q = '?start=' + encodeURIComponent(start.toISOString()) + '&end=' + encodeURIComponent(end.toISOString());
    return Promise.all([
      api('/api/v1/sensors/' + id + '/readings' + q),
      api('/api/v1/sensors/' + id + '/setpoints')
    ]).then(function (res) {
      var r = res[0];
      state.series = r.ts.map(function (ts, i) { return [Date.parse(ts), r.value[i]]; });
      state.series.sort(byTime);
      state.setpoints = res[1].setpoints;
      drawChart(res[1]);
      openSensorFeed(id);
    });
  }

  function byTime(a, b) { return a[0] - b[0]; }

  function drawChart(meta) {
    var lines = state.setpoints.map(function (p) {
      var colour = p.severity === 'alarm' || p.severity === 'critical' ? COLOURS.red : COLOURS.orange;
      return { yAxis: p.value, name: p.name, lineStyle: { color: colour, type: 'dashed' },
               label: { formatter: p.name + ' ' + p.value } };
    });
    state.chart.setOption({
      tooltip: { trigger: 'axis' },
      xAxis: { type: 'time' },
      yAxis: { type: 'value', name: meta ? meta.unit : '', scale: true },
      series: [{
        name: t('readings'), type: 'line', showSymbol: false, data: state.series,
        markLine: { symbol: 'none', silent: true, data: lines }
      }]
    }, true);
  }

  function openSensorFeed(id) {
    if (state.sensorWs) { state.sensorWs.onclose = null; state.sensorWs.close(); }
    liveSocket({ sensor: id, alerts: 'false' }).then(function (ws) { sensorFeed(ws); });
  }

  function sensorFeed(ws) {
    ws.onmessage = function (ev) {
      var m = JSON.parse(ev.data);
      if (m.type !== 'readings') { return; }
      var last = state.series.length ? state.series[state.series.length - 1][0] : -Infinity;
      var ordered = true;
      for (var i = 0; i < m.sensor.length; i++) {
        var ms = m.ts_us[i] / 1000;
        if (ms < last) { ordered = false; }
        last = Math.max(last, ms);
        state.series.push([ms, m.value[i]]);
      }
      if (!ordered) { state.series.sort(byTime); }  // late and backfilled readings arrive out of order
      if (state.series.length > 20000) { state.series.splice(0, state.series.length - 20000); }
      state.chart.setOption({ series: [{ data: state.series }] });
    };
    state.sensorWs = ws;
  }

  // ------------------------------------------------------------------ live alerts
  // The key never goes in a URL: a one-use ticket (30 s) opens the feed.
  function liveSocket(params) {
    return api('/api/v1/live/ticket', { method: 'POST' }).then(function (r) {
      var q = new URLSearchParams(Object.assign({ ticket: r.ticket }, params));
      return new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/v1/live/ws?' + q.toString());
    });
  }

  var refreshTimer = null;
  function refreshSoon() {
    if (refreshTimer) { return; }
    refreshTimer = setTimeout(function () { refreshTimer = null; refresh(); }, 200);
  }

  function refresh() { return Promise.all([loadAlerts(), loadRiskmap()]); }

  function openAlertFeed() {
    liveSocket({ readings: 'false' }).then(alertFeed, function () {
      if (state.key) { setTimeout(openAlertFeed, 2000); }
    });
  }

  function alertFeed(ws) {
    ws.onopen = function () { setLive(true); };
    ws.onmessage = function (ev) {
      var m = JSON.parse(ev.data);
      if (m.type === 'alert' || m.type === 'silence') { refreshSoon(); }
    };
    ws.onclose = function (ev) {
      setLive(false);
      if (ev.code === 4401) { logout(t('badKey')); return; }
      if (state.key) { setTimeout(function () { refresh(); openAlertFeed(); }, 2000); }  // fell behind: reload
    };
    state.ws = ws;
  }

  function setLive(on) {
    var el = $('live-status');
    el.className = 'status ' + (on ? 'on' : 'off');
    el.dataset.i18n = on ? 'online' : 'offline';
    el.textContent = t(el.dataset.i18n);
  }

  // ------------------------------------------------------------------ session
  function start() {
    $('login').hidden = true;
    $('app').hidden = false;
    $('logout').hidden = false;
    state.map = state.map || echarts.init($('map'));
    state.chart = state.chart || echarts.init($('chart'));
    return fetch('/dashboard/vendor/jiangxi.json')
      .then(function (r) { return r.json(); })
      .then(function (geo) { echarts.registerMap('jiangxi', geo); })
      .then(function () { return Promise.all([refresh(), loadSensors()]); })
      .then(function () {
        $('scope').textContent = state.riskmap ? state.riskmap.scope : '';
        openAlertFeed();
        state.ready = true;
      });
  }

  function logout(message) {
    state.key = '';
    state.ready = false;
    sessionStorage.removeItem('yujing.key');
    [state.ws, state.sensorWs].forEach(function (ws) { if (ws) { ws.onclose = null; ws.close(); } });
    $('app').hidden = true;
    $('login').hidden = false;
    $('logout').hidden = true;
    var err = $('login-error');
    err.hidden = !message;
    err.textContent = message || '';
  }

  document.addEventListener('DOMContentLoaded', function () {
    applyLang();
    $('lang').addEventListener('change', function (e) {
      state.lang = e.target.value; localStorage.setItem('yujing.lang', state.lang); applyLang();
    });
    $('map-mode').addEventListener('change', function (e) { state.mode = e.target.value; drawMap(); });
    $('sensor').addEventListener('change', function (e) { selectSensor(e.target.value); });
    $('logout').addEventListener('click', function () { logout(''); });
    $('login-form').addEventListener('submit', function (e) {
      e.preventDefault();
      state.key = $('api-key').value.trim();
      sessionStorage.setItem('yujing.key', state.key);
      start().catch(function (err) { console.error(err); });
    });
    if (state.key) { start().catch(function (err) { console.error(err); }); }
  });
})();
