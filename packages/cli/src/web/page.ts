/**
 * The web inspector's page: one small HTML file with its script and styles served
 * beside it by the agent API. No framework and no build step, nothing fetched from the
 * internet, so it works offline; the page's CSP allows only its own origin.
 */
export const INSPECTOR_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gw inspector</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/inspect/app.css">
<script src="/inspect/app.js" defer></script>
</head>
<body>
<header id="top">
  <div class="brand"><b>gw</b> <span id="version"></span> <span id="status" class="status">connecting</span> <span id="latency" class="dim"></span></div>
  <ul id="tunnels"></ul>
</header>
<main>
  <section id="left">
    <div class="toolbar">
      <input id="filter" type="search" placeholder="filter: method, status (404, 4xx) or path" autocomplete="off" spellcheck="false">
      <button id="clear" type="button" title="Clear all captured requests">Clear</button>
    </div>
    <div id="capture-off" class="notice" hidden>Capture is off (--inspect=false): requests are not recorded.</div>
    <table id="list">
      <thead><tr><th>time</th><th>method</th><th>path</th><th>status</th><th>duration</th><th>size</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
    <div id="empty" class="notice">No requests yet. Send one to your public URL and it shows up here.</div>
  </section>
  <section id="right">
    <div id="nothing" class="notice">Select a request to see its headers and body.</div>
    <div id="detail" hidden>
      <div class="actions">
        <button id="replay" type="button">Replay</button>
        <button id="replay-edit" type="button">Replay with modifications</button>
        <span id="flash" role="status"></span>
      </div>
      <form id="editor" hidden>
        <div class="row">
          <input id="mod-method" class="method" aria-label="method" spellcheck="false">
          <input id="mod-path" class="path" aria-label="path" spellcheck="false">
        </div>
        <label><span>Headers, one <code>Name: value</code> per line</span>
          <textarea id="mod-headers" rows="8" spellcheck="false"></textarea></label>
        <label><span>Body <span id="mod-body-note" class="dim"></span></span>
          <textarea id="mod-body" rows="8" spellcheck="false"></textarea></label>
        <div class="row">
          <button id="mod-send" type="submit">Send</button>
          <button id="mod-cancel" type="button">Cancel</button>
        </div>
      </form>
      <h2 id="request-line"></h2>
      <div id="response-line" class="line"></div>
      <div id="marks"></div>
      <div id="timing" class="timing"></div>
      <h3>Request headers</h3>
      <table id="request-headers" class="headers"></table>
      <h3>Request body <span id="request-body-info" class="dim"></span></h3>
      <div id="request-body-note" class="warn"></div>
      <pre id="request-body"></pre>
      <div id="response-part">
        <h3>Response headers</h3>
        <table id="response-headers" class="headers"></table>
        <h3>Response body <span id="response-body-info" class="dim"></span></h3>
        <div id="response-body-note" class="warn"></div>
        <pre id="response-body"></pre>
      </div>
    </div>
  </section>
</main>
</body>
</html>
`
