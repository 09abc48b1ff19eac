/**
 * The dashboard's page, script and stylesheet as routes. Everything comes
 * from the package (no CDN, no framework); a strict Content-Security-Policy
 * allows only our own script and style, so injected markup could not run.
 */
import { sendAsset } from './respond.js';
import { DASHBOARD_JS } from './dashboard-script.js';
import { DASHBOARD_CSS } from './dashboard-style.js';
import type { Route } from './router.js';

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The page: a frame the script fills. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>taskwire</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/dashboard.css">
<script src="/assets/dashboard.js" defer></script>
</head>
<body>
<header>
  <h1>task<span>wire</span></h1>
  <nav>
    <a href="#/overview" data-view="overview">Overview</a>
    <a href="#/queues" data-view="queues">Queues</a>
    <a href="#/workers" data-view="workers">Workers</a>
    <a href="#/jobs" data-view="jobs">Jobs</a>
    <a href="#/failed" data-view="failed">Failed</a>
  </nav>
  <span class="spacer"></span>
  <span id="version" class="muted"></span>
  <span id="live" class="pill">connecting</span>
  <span id="auth"></span>
</header>
<main id="view"></main>
<dialog id="confirm"></dialog>
<div id="toast" aria-live="polite"></div>
<noscript>The dashboard needs JavaScript; the API is at /api/openapi.json.</noscript>
</body>
</html>
`;

/** GET /, /assets/dashboard.js, /assets/dashboard.css. */
export const DASHBOARD_ROUTES: readonly Route[] = [
  {
    method: 'GET',
    path: '/',
    mutating: false,
    summary: 'The dashboard',
    handler: (ctx) => sendAsset(ctx.res, 'text/html; charset=utf-8', DASHBOARD_HTML, { 'Content-Security-Policy': CSP, 'X-Frame-Options': 'DENY', 'Referrer-Policy': 'no-referrer' }),
  },
  {
    method: 'GET',
    path: '/assets/dashboard.js',
    mutating: false,
    summary: "The dashboard's script",
    handler: (ctx) => sendAsset(ctx.res, 'text/javascript; charset=utf-8', DASHBOARD_JS),
  },
  {
    method: 'GET',
    path: '/assets/dashboard.css',
    mutating: false,
    summary: "The dashboard's stylesheet",
    handler: (ctx) => sendAsset(ctx.res, 'text/css; charset=utf-8', DASHBOARD_CSS),
  },
];
