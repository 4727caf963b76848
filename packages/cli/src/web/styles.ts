/** The web inspector's styles; light and dark follow the system. */
export const INSPECTOR_CSS = String.raw`
:root { color-scheme: light dark; --bg: #fff; --fg: #1d1f23; --dim: #6b7280; --line: #e5e7eb; --sel: #dbeafe; --ok: #15803d; --redir: #0e7490; --client: #b45309; --server: #b91c1c; --mark: #7c3aed; }
@media (prefers-color-scheme: dark) { :root { --bg: #16181d; --fg: #e5e7eb; --dim: #9ca3af; --line: #2c313a; --sel: #1e3a5f; --ok: #4ade80; --redir: #22d3ee; --client: #fbbf24; --server: #f87171; --mark: #c4b5fd; } }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
header { padding: 8px 12px; border-bottom: 1px solid var(--line); }
header ul { margin: 4px 0 0; padding: 0; list-style: none; font-family: ui-monospace, monospace; }
.brand b { font-size: 15px; }
.status { font-weight: 600; }
.status.online { color: var(--ok); } .status.reconnecting, .status.connecting { color: var(--client); } .status.offline { color: var(--server); }
.dim { color: var(--dim); }
main { display: grid; grid-template-columns: minmax(420px, 45%) 1fr; height: calc(100vh - 64px); }
#left { border-right: 1px solid var(--line); overflow: auto; }
#right { overflow: auto; padding: 8px 14px; }
.toolbar { display: flex; gap: 6px; padding: 6px; position: sticky; top: 0; background: var(--bg); }
.toolbar input { flex: 1; }
input, textarea, button { font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--line); border-radius: 4px; padding: 3px 6px; }
button { cursor: pointer; } button:hover { border-color: var(--dim); }
table { border-collapse: collapse; width: 100%; }
#list th { text-align: left; font-weight: 500; color: var(--dim); padding: 2px 6px; }
#list td { padding: 2px 6px; white-space: nowrap; font-family: ui-monospace, monospace; font-size: 12px; border-top: 1px solid var(--line); }
#list td.path { max-width: 320px; overflow: hidden; text-overflow: ellipsis; }
#list tr { cursor: pointer; } #list tbody tr:hover { background: var(--line); } #list tr.selected { background: var(--sel); }
.s2 { color: var(--ok); } .s3 { color: var(--redir); } .s4 { color: var(--client); } .s5 { color: var(--server); } .s0 { color: var(--dim); }
.mark { color: var(--mark); }
.notice { padding: 16px; color: var(--dim); }
h2 { font: 600 14px ui-monospace, monospace; margin: 10px 0 2px; word-break: break-all; }
h3 { font-size: 13px; margin: 14px 0 4px; }
.line { font-family: ui-monospace, monospace; font-weight: 600; }
.timing { color: var(--dim); margin-top: 4px; }
table.headers td { font-family: ui-monospace, monospace; font-size: 12px; padding: 1px 6px 1px 0; vertical-align: top; word-break: break-all; }
table.headers td:first-child { color: var(--dim); white-space: nowrap; width: 1%; padding-right: 16px; }
pre { background: color-mix(in srgb, var(--line) 40%, transparent); padding: 8px; overflow: auto; max-height: 50vh; margin: 0; font-size: 12px; }
.warn { color: var(--client); }
.actions { display: flex; gap: 8px; align-items: center; }
#flash.ok { color: var(--ok); } #flash.err { color: var(--server); }
#editor { border: 1px solid var(--line); border-radius: 6px; padding: 8px; margin-top: 8px; display: grid; gap: 6px; }
#editor[hidden] { display: none; }
#editor label { display: grid; gap: 2px; }
#editor textarea { width: 100%; font-family: ui-monospace, monospace; font-size: 12px; }
.row { display: flex; gap: 6px; } .row .method { width: 90px; } .row .path { flex: 1; }
`
