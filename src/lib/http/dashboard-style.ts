/** The dashboard's stylesheet (served as /assets/dashboard.css; no external fonts or assets). */
export const DASHBOARD_CSS = `
:root {
  --bg: #f6f7f9; --panel: #fff; --ink: #1d2330; --muted: #667085; --line: #e3e6ec;
  --accent: #2f6fed; --ok: #168a4a; --bad: #c8322b; --warn: #b7791f; --idle: #8a93a6;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; }
header { display: flex; align-items: center; gap: 18px; padding: 10px 20px; background: #141a26; color: #e8ecf3; flex-wrap: wrap; }
header h1 { font-size: 17px; margin: 0; letter-spacing: .3px; }
header h1 span { color: #7fa6ff; }
nav { display: flex; gap: 4px; }
nav a { color: #c5cde0; text-decoration: none; padding: 5px 10px; border-radius: 6px; }
nav a.active, nav a:hover { background: #263047; color: #fff; }
.spacer { flex: 1; }
.pill { font-size: 12px; padding: 2px 9px; border-radius: 99px; background: #3a4258; color: #e8ecf3; }
.pill.live { background: var(--ok); }
.pill.down { background: var(--bad); }
#auth { display: flex; gap: 6px; align-items: center; font-size: 12px; }
#auth input { width: 150px; }
main { padding: 18px 20px; max-width: 1400px; }
h2 { font-size: 16px; margin: 4px 0 12px; }
h3 { font-size: 14px; margin: 18px 0 8px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; margin-bottom: 14px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .label { color: var(--muted); font-size: 12px; }
.card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .value.ok { color: var(--ok); } .card .value.bad { color: var(--bad); }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px; margin-bottom: 14px; overflow-x: auto; }
canvas { width: 100%; height: 220px; display: block; }
.legend { font-size: 12px; color: var(--muted); display: flex; gap: 14px; margin-bottom: 4px; }
.legend i { display: inline-block; width: 10px; height: 3px; vertical-align: middle; margin-right: 4px; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 500; font-size: 12px; }
td.num, th.num { text-align: right; }
td.wrap { white-space: normal; word-break: break-word; max-width: 420px; }
tr:hover td { background: #fafbfd; }
a { color: var(--accent); }
.state { font-size: 11px; font-weight: 600; padding: 1px 7px; border-radius: 4px; color: #fff; background: var(--idle); }
.state.QUEUED { background: #6b7895; } .state.RUNNING { background: var(--accent); }
.state.DONE { background: var(--ok); } .state.FAILED { background: var(--bad); } .state.CANCELLED { background: var(--warn); }
.tag { font-size: 11px; padding: 1px 6px; border-radius: 4px; background: #eef1f6; margin-right: 3px; }
.tag.paused { background: #fff2d6; color: #8a5a00; }
button { font: inherit; font-size: 12px; padding: 3px 10px; border: 1px solid #c9cfdb; border-radius: 5px; background: #fff; cursor: pointer; }
button:hover:not(:disabled) { border-color: var(--accent); color: var(--accent); }
button.danger:hover:not(:disabled) { border-color: var(--bad); color: var(--bad); }
button:disabled { opacity: .45; cursor: not-allowed; }
input, select { font: inherit; font-size: 13px; padding: 3px 6px; border: 1px solid #c9cfdb; border-radius: 5px; }
.controls { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin-bottom: 10px; }
.bar { width: 120px; height: 10px; background: #eef1f6; border-radius: 5px; overflow: hidden; display: inline-block; vertical-align: middle; margin-right: 6px; }
.bar > div { height: 100%; background: var(--accent); }
.muted { color: var(--muted); }
pre { background: #f3f5f8; border: 1px solid var(--line); border-radius: 6px; padding: 8px; max-height: 260px; overflow: auto; white-space: pre-wrap; word-break: break-all; margin: 4px 0; }
dl { display: grid; grid-template-columns: 140px 1fr; gap: 4px 12px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; }
#toast { position: fixed; right: 16px; bottom: 16px; display: flex; flex-direction: column; gap: 6px; }
#toast div { background: #2a2f3a; color: #fff; padding: 8px 12px; border-radius: 6px; max-width: 420px; font-size: 13px; }
#toast div.bad { background: var(--bad); }
dialog { border: 1px solid var(--line); border-radius: 8px; padding: 16px; max-width: 420px; }
dialog::backdrop { background: rgba(20, 26, 38, .35); }
dialog p { margin-top: 0; }
dialog .row { display: flex; gap: 8px; justify-content: flex-end; margin-top: 12px; }
`;
