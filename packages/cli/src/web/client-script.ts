/**
 * The web inspector's script, served as /inspect/app.js. Plain browser JavaScript kept
 * in a string so that `tsc` alone ships it (no bundler, no copy step); it avoids template
 * literals so it can live inside this one.
 *
 * It opens the SSE feed (`/api/requests/http/events`) for the live list, fetches a
 * request by id for the detail, and replays with `POST /api/requests/http`, with a
 * `modifications` object for "replay with modifications".
 */
export const INSPECTOR_JS = String.raw`'use strict';
(function () {
  var rows = new Map();       // id -> summary
  var order = [];             // ids, newest first
  var selectedId = null;
  var current = null;         // the selected request's full JSON
  var filterTerms = [];
  var $ = function (id) { return document.getElementById(id); };
  var tbody = document.querySelector('#list tbody');

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function clock(iso) { var d = new Date(iso); return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()); }
  function duration(ms) {
    if (ms === null || ms === undefined) return '-';
    if (ms < 1) return Math.round(ms * 1000) + '\u00b5s';
    if (ms < 1000) return (ms < 10 ? ms.toFixed(1) : Math.round(ms)) + 'ms';
    return (ms / 1000).toFixed(2) + 's';
  }
  function bytes(n) {
    if (n < 1024) return n + 'B';
    var units = ['KB', 'MB', 'GB']; var v = n; var u = -1;
    do { v /= 1024; u++; } while (v >= 1024 && u < units.length - 1);
    return (v < 10 ? v.toFixed(1) : Math.round(v)) + units[u];
  }
  function statusClass(code) { return code ? 's' + String(code)[0] : 's0'; }
  function post(body) {
    return fetch('/api/requests/http', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  }
  function flash(text, ok) {
    var f = $('flash'); f.textContent = text; f.className = ok ? 'ok' : 'err';
    clearTimeout(flash.timer); flash.timer = setTimeout(function () { f.textContent = ''; }, 5000);
  }
  async function explain(res) {
    try { var j = await res.json(); return j.error_code + ': ' + j.msg; } catch (e) { return 'HTTP ' + res.status; }
  }

  // --- filter: words that must all match; method, status, status class or path ---
  var METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE'];
  function parseFilter(text) {
    return text.trim().split(/\s+/).filter(Boolean).map(function (w) {
      var neg = w[0] === '!'; if (neg) w = w.slice(1);
      var up = w.toUpperCase();
      if (METHODS.indexOf(up) >= 0) return { kind: 'method', value: up, neg: neg };
      if (/^[1-5]\d\d$/.test(w)) return { kind: 'status', value: w, neg: neg };
      if (/^[1-5](xx)?$/i.test(w)) return { kind: 'class', value: w[0], neg: neg };
      return { kind: 'path', value: w.toLowerCase(), neg: neg };
    });
  }
  function matches(r) {
    var status = r.status_code || (r.verdict && r.verdict.status) || null;
    return filterTerms.every(function (t) {
      var hit = t.kind === 'method' ? r.method.toUpperCase() === t.value
        : t.kind === 'status' ? String(status) === t.value
        : t.kind === 'class' ? status !== null && String(status)[0] === t.value
        : r.uri.toLowerCase().indexOf(t.value) >= 0;
      return hit !== t.neg;
    });
  }

  // --- list ---
  function note(r) {
    var parts = [];
    if (r.replay_of) parts.push('replay');
    if (r.verdict) parts.push(r.verdict.action + (r.verdict.rule ? ' ' + r.verdict.rule : ''));
    if (r.error) parts.push(r.error.code.replace(/^GW_ERR_/, ''));
    if (r.websocket) parts.push('ws \u2193' + r.websocket.messages_in + ' \u2191' + r.websocket.messages_out);
    return parts.join(' ');
  }
  function rowFor(r) {
    var tr = el('tr');
    tr.dataset.id = r.id;
    var status = r.status_code || (r.verdict && r.verdict.status) || null;
    tr.appendChild(el('td', 'dim', clock(r.start)));
    tr.appendChild(el('td', 'method', r.method));
    var path = el('td', 'path', r.path); path.title = r.uri; tr.appendChild(path);
    tr.appendChild(el('td', 'status ' + statusClass(status), status === null ? (r.state === 'open' ? '\u2026' : 'ERR') : status));
    tr.appendChild(el('td', 'duration', r.state === 'open' ? 'open' : duration(r.duration_ms)));
    tr.appendChild(el('td', 'dim', bytes(r.size)));
    tr.appendChild(el('td', 'mark', note(r)));
    if (r.id === selectedId) tr.classList.add('selected');
    return tr;
  }
  var renderQueued = false;
  function renderList() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(function () {
      renderQueued = false;
      var frag = document.createDocumentFragment();
      var shown = 0;
      for (var i = 0; i < order.length && shown < 500; i++) {
        var r = rows.get(order[i]);
        if (!r || !matches(r)) continue;
        frag.appendChild(rowFor(r)); shown++;
      }
      tbody.replaceChildren(frag);
      $('empty').hidden = shown > 0;
      if (order.length > 0 && shown === 0) $('empty').textContent = 'No request matches the filter.';
      else $('empty').textContent = 'No requests yet. Send one to your public URL and it shows up here.';
    });
  }
  function upsert(r) {
    if (!rows.has(r.id)) {
      // Newest first by sequence; a late arrival is rare, so a linear insert is fine.
      var i = 0;
      while (i < order.length && rows.get(order[i]).seq > r.seq) i++;
      order.splice(i, 0, r.id);
    }
    rows.set(r.id, r);
    if (r.id === selectedId && r.state === 'done' && current && current.gw.state !== 'done') loadDetail(r.id);
  }
  function remove(id) {
    if (!rows.delete(id)) return;
    var i = order.indexOf(id); if (i >= 0) order.splice(i, 1);
    if (id === selectedId) forget('That request was dropped from the capture buffer (--inspect-db-size).');
  }
  function forget(why) {
    selectedId = null; current = null;
    $('detail').hidden = true; $('editor').hidden = true;
    $('nothing').hidden = false; $('nothing').textContent = why;
  }

  tbody.addEventListener('click', function (e) {
    var tr = e.target.closest('tr'); if (!tr) return;
    select(tr.dataset.id);
  });
  document.addEventListener('keydown', function (e) {
    if (e.target.closest('input, textarea')) return;
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    var ids = Array.prototype.map.call(tbody.children, function (tr) { return tr.dataset.id; });
    var i = ids.indexOf(selectedId);
    var next = e.key === 'ArrowDown' ? Math.min(ids.length - 1, i + 1) : Math.max(0, i - 1);
    if (ids[next]) { select(ids[next]); e.preventDefault(); }
  });
  function select(id) {
    selectedId = id;
    Array.prototype.forEach.call(tbody.children, function (tr) { tr.classList.toggle('selected', tr.dataset.id === id); });
    $('editor').hidden = true;
    loadDetail(id);
  }

  // --- detail ---
  function b64bytes(b64) {
    var bin = atob(b64); var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  // Splits raw HTTP (ngrok's base64 'raw') into head lines and body bytes.
  function splitRaw(b64) {
    var all = b64bytes(b64);
    for (var i = 0; i + 3 < all.length; i++) {
      if (all[i] === 13 && all[i + 1] === 10 && all[i + 2] === 13 && all[i + 3] === 10) {
        var head = new TextDecoder('latin1').decode(all.subarray(0, i));
        return { lines: head.split('\r\n'), body: all.subarray(i + 4) };
      }
    }
    return { lines: new TextDecoder('latin1').decode(all).split('\r\n'), body: new Uint8Array(0) };
  }
  function headerPairs(lines) {
    var out = [];
    for (var i = 1; i < lines.length; i++) {
      var c = lines[i].indexOf(':'); if (c < 0) continue;
      out.push([lines[i].slice(0, c), lines[i].slice(c + 1).trim()]);
    }
    return out;
  }
  function find(pairs, name) {
    for (var i = 0; i < pairs.length; i++) if (pairs[i][0].toLowerCase() === name) return pairs[i][1];
    return undefined;
  }
  function fillHeaders(table, pairs) {
    table.replaceChildren();
    pairs.forEach(function (p) {
      var tr = el('tr'); tr.appendChild(el('td', '', p[0])); tr.appendChild(el('td', '', p[1])); table.appendChild(tr);
    });
  }
  function hexDump(b) {
    var lines = [];
    for (var off = 0; off < b.length && lines.length < 4096; off += 16) {
      var hex = '', ascii = '';
      for (var i = 0; i < 16; i++) {
        if (off + i < b.length) {
          var c = b[off + i];
          hex += (c < 16 ? '0' : '') + c.toString(16) + (i === 7 ? '  ' : ' ');
          ascii += c >= 32 && c < 127 ? String.fromCharCode(c) : '.';
        } else hex += i === 7 ? '    ' : '   ';
      }
      lines.push(('0000000' + off.toString(16)).slice(-8) + '  ' + hex + ' ' + ascii);
    }
    return lines.join('\n');
  }
  function prettyXml(text) {
    var tokens = text.replace(/>\s+</g, '><').split(/(<[^>]+>)/).filter(function (t) { return t.trim() !== ''; });
    var out = [], depth = 0;
    for (var i = 0; i < tokens.length; i++) {
      var t = tokens[i], ind = '  '.repeat(depth);
      if (t.indexOf('</') === 0) { depth = Math.max(0, depth - 1); out.push('  '.repeat(depth) + t); }
      else if (t.indexOf('<?') === 0 || t.indexOf('<!') === 0 || /\/>$/.test(t)) out.push(ind + t);
      else if (t[0] === '<') {
        if (tokens[i + 1] !== undefined && tokens[i + 1][0] !== '<' && tokens[i + 2] && tokens[i + 2].indexOf('</') === 0) {
          out.push(ind + t + tokens[i + 1].trim() + tokens[i + 2]); i += 2;
        } else { out.push(ind + t); depth++; }
      } else out.push(ind + t.trim());
    }
    return out.join('\n');
  }
  async function inflate(body, coding) {
    if (!coding || typeof DecompressionStream === 'undefined') return null;
    coding = coding.trim().toLowerCase();
    var format = coding === 'gzip' || coding === 'x-gzip' ? 'gzip' : coding === 'deflate' ? 'deflate' : null;
    if (!format) return null;
    try {
      var stream = new Blob([body]).stream().pipeThrough(new DecompressionStream(format));
      return new Uint8Array(await new Response(stream).arrayBuffer());
    } catch (e) { return null; }
  }
  // Returns {kind, text} for a body: json and xml indented, text as is, binary as hex.
  async function preview(body, pairs) {
    if (body.length === 0) return { kind: 'empty', text: '' };
    var decoded = await inflate(body, find(pairs, 'content-encoding'));
    var bytes = decoded || body;
    var type = (find(pairs, 'content-type') || '').split(';')[0].trim().toLowerCase();
    var text = null;
    try { text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch (e) {
      try { text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, Math.max(0, bytes.length - 3))); } catch (e2) { text = null; }
    }
    if (text !== null && /[\x00-\x08\x0e-\x1f]/.test(text)) text = null;
    var extra = decoded ? ', ' + find(pairs, 'content-encoding') + ' decoded' : '';
    if (text === null) return { kind: 'binary' + extra, text: hexDump(bytes) };
    if (type === 'application/json' || /\+json$/.test(type) || /^\s*[\[{]/.test(text)) {
      try { return { kind: 'json' + extra, text: JSON.stringify(JSON.parse(text), null, 2) }; } catch (e) { /* not JSON after all */ }
    }
    if (/[\/+]xml$/.test(type) || /^\s*<\?xml/.test(text)) return { kind: 'xml' + extra, text: prettyXml(text) };
    return { kind: 'text' + extra, text: text };
  }
  async function fillBody(which, raw, info, pairs) {
    var p = await preview(raw.body, pairs);
    $(which + '-body-info').textContent = p.kind === 'empty' ? '(empty)' : '(' + p.kind + ', ' + bytes(info.size) + ')';
    $(which + '-body-note').textContent = info.truncated ? 'truncated: ' + info.captured + ' of ' + info.size + ' bytes captured (--inspect-body-limit)' : '';
    $(which + '-body').textContent = p.text;
    $(which + '-body').hidden = p.kind === 'empty';
  }

  async function loadDetail(id) {
    var res = await fetch('/api/requests/http/' + encodeURIComponent(id));
    if (id !== selectedId) return;
    if (!res.ok) { $('nothing').hidden = false; $('nothing').textContent = await explain(res); $('detail').hidden = true; return; }
    var r = await res.json();
    if (id !== selectedId) return;
    current = r;
    $('nothing').hidden = true;
    $('detail').hidden = false;
    var req = splitRaw(r.request.raw);
    current.requestPairs = headerPairs(req.lines);
    current.requestBodyBytes = req.body;
    $('request-line').textContent = req.lines[0];
    fillHeaders($('request-headers'), current.requestPairs);
    await fillBody('request', req, r.gw.request_body, current.requestPairs);
    var marks = [];
    if (r.gw.replay_of) marks.push('replay of ' + r.gw.replay_of);
    if (r.gw.verdict) marks.push('policy: ' + r.gw.verdict.action + (r.gw.verdict.rule ? ' (rule ' + r.gw.verdict.rule + ')' : '') + ' answered ' + r.gw.verdict.status);
    if (r.gw.error) marks.push('error: ' + r.gw.error.code + ': ' + r.gw.error.message);
    if (r.gw.websocket) marks.push('WebSocket: ' + r.gw.websocket.messages_in + ' messages in, ' + r.gw.websocket.messages_out + ' out');
    $('marks').replaceChildren.apply($('marks'), marks.map(function (m) { return el('div', 'mark', m); }));
    var t = r.gw.timing;
    $('timing').textContent = 'relay \u2192 agent ' + duration(t.relay_to_agent_ms) + ' \u00b7 agent \u2192 upstream ' + duration(t.agent_to_upstream_ms) +
      ' \u00b7 upstream ' + duration(t.upstream_ms) + ' \u00b7 transfer ' + duration(t.transfer_ms) + ' \u00b7 total ' + duration(t.total_ms);
    if (r.response) {
      var resp = splitRaw(r.response.raw);
      var pairs = headerPairs(resp.lines);
      $('response-line').textContent = resp.lines[0];
      $('response-line').className = 'line ' + statusClass(r.response.status_code);
      $('response-part').hidden = false;
      fillHeaders($('response-headers'), pairs);
      await fillBody('response', resp, r.gw.response_body, pairs);
    } else {
      $('response-line').textContent = r.gw.state === 'open' ? '(waiting for the response)' : '(no response)';
      $('response-line').className = 'line dim';
      $('response-part').hidden = true;
    }
  }

  // --- replay ---
  $('replay').addEventListener('click', async function () {
    if (!current) return;
    var res = await post({ id: current.id });
    flash(res.status === 204 ? 'Replayed ' + current.request.method + ' ' + current.request.uri : 'Replay failed: ' + await explain(res), res.status === 204);
  });
  $('replay-edit').addEventListener('click', function () {
    if (!current) return;
    var ed = $('editor');
    ed.hidden = !ed.hidden;
    if (ed.hidden) return;
    $('mod-method').value = current.request.method;
    $('mod-path').value = current.request.uri;
    $('mod-headers').value = current.requestPairs
      .filter(function (p) { return !/^(content-length|transfer-encoding)$/i.test(p[0]); })
      .map(function (p) { return p[0] + ': ' + p[1]; }).join('\n');
    var body = current.requestBodyBytes;
    var text = null;
    try { text = new TextDecoder('utf-8', { fatal: true }).decode(body); } catch (e) { text = null; }
    var b = $('mod-body');
    b.disabled = text === null;
    b.value = text === null ? '' : text;
    $('mod-body-note').textContent = text === null ? '(binary: sent as captured)' : current.gw.request_body.truncated ? '(truncated at capture: edit or complete it before sending)' : '';
  });
  $('mod-cancel').addEventListener('click', function () { $('editor').hidden = true; });
  $('editor').addEventListener('submit', async function (e) {
    e.preventDefault();
    if (!current) return;
    var headers = $('mod-headers').value.split('\n').map(function (l) { return l.trim(); }).filter(Boolean).map(function (l) {
      var c = l.indexOf(':'); return c < 0 ? [l, ''] : [l.slice(0, c).trim(), l.slice(c + 1).trim()];
    });
    var mods = { method: $('mod-method').value.trim(), target: $('mod-path').value.trim(), headers: headers };
    if ($('mod-body').disabled) {
      var bin = ''; var body = current.requestBodyBytes;
      for (var i = 0; i < body.length; i++) bin += String.fromCharCode(body[i]);
      mods.body_base64 = btoa(bin);
    } else mods.body = $('mod-body').value;
    var res = await post({ id: current.id, modifications: mods });
    if (res.status === 204) { flash('Sent ' + mods.method + ' ' + mods.target, true); $('editor').hidden = true; }
    else flash('Replay failed: ' + await explain(res), false);
  });

  // --- clear and filter ---
  $('clear').addEventListener('click', async function () {
    var res = await fetch('/api/requests/http', { method: 'DELETE', headers: { 'Content-Type': 'application/json' } });
    if (res.status !== 204) flash('Clear failed: ' + await explain(res), false);
  });
  $('filter').addEventListener('input', function () { filterTerms = parseFilter($('filter').value); renderList(); });

  // --- status ---
  function showStatus(s) {
    var st = $('status');
    st.textContent = s.status === 'reconnecting' ? 'reconnecting (attempt ' + s.attempt + ')' : s.status;
    st.className = 'status ' + s.status;
    $('version').textContent = s.version;
    $('latency').textContent = s.latency_ms === null ? '' : 'latency ' + Math.round(s.latency_ms) + 'ms';
    var ul = $('tunnels'); ul.replaceChildren();
    s.tunnels.forEach(function (t) {
      (t.public_urls && t.public_urls.length ? t.public_urls : [t.public_url]).forEach(function (u) {
        ul.appendChild(el('li', '', u + ' \u2192 ' + t.upstream));
      });
    });
  }

  // --- live feed ---
  var feed = new EventSource('/api/requests/http/events');
  feed.addEventListener('snapshot', function (e) {
    var d = JSON.parse(e.data);
    rows.clear(); order = [];
    d.requests.forEach(function (r) { rows.set(r.id, r); order.push(r.id); });
    $('capture-off').hidden = d.capture !== false;
    renderList();
  });
  feed.addEventListener('requests', function (e) {
    var d = JSON.parse(e.data);
    d.remove.forEach(remove);
    d.upsert.forEach(upsert);
    renderList();
  });
  feed.addEventListener('clear', function () {
    rows.clear(); order = []; renderList();
    forget('Cleared. Select a request to see its headers and body.');
  });
  feed.addEventListener('status', function (e) { showStatus(JSON.parse(e.data)); });
  feed.addEventListener('error', function () { $('status').textContent = 'agent unreachable'; $('status').className = 'status offline'; });
})();
`
