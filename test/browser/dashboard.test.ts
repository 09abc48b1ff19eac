/**
 * The dashboard in real headless Chromium (Debian's /usr/bin/chromium,
 * driven by playwright-core; .ci/run installs it, so this runs in CI):
 * live updates without a reload, retry from the Failed view, pause from
 * the Queues view checked with the CLI, purge behind a confirmation naming
 * the kind, read-only until the page is given the token, and a screenshot.
 *
 * With TASKWIRE_SCREENSHOT=PATH (e.g. docs/dashboard.png) it also runs a
 * little load first and writes the README's screenshot there.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { describe, expect, it, onTestFinished } from 'vitest';
import { PermanentError } from '../../src/lib/errors.js';
import { startHttpScheduler, startWorker } from '../helpers/http.js';
import { ROOT, spawnTs } from '../helpers/process.js';
import { connectClient } from '../helpers/scheduler.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TOKEN = 'dash-token';

async function launch(): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does this)`);
  }
  const profile = await mkdtemp(join(tmpdir(), 'taskwire-chromium-')); // a fresh --user-data-dir
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ARGS,
    headless: true,
    viewport: { width: 1280, height: 820 },
  });
  onTestFinished(async () => {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  });
  return context;
}

/** Runs the taskwire CLI; resolves with its exit code and output. */
async function cli(address: string, args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const child = spawnTs('src/client.ts', [...args, '--server', address]);
  const code = await child.exited;
  return { code, stdout: child.stdout, stderr: child.stderr };
}

describe('dashboard (headless Chromium)', () => {
  it('shows jobs live, retries from the Failed view, pauses and purges a kind, and takes a screenshot', async () => {
    const { base, address } = await startHttpScheduler({ httpToken: TOKEN, http: { statsIntervalMs: 250, events: { flushMs: 50 } } });
    let failing = true;
    await startWorker(address, { name: 'dash-worker', capabilities: ['sha256', 'flaky', 'add'] }, {
      flaky: (args) => {
        if (failing) throw new PermanentError(`upstream refused ${String(args)}`);
        return `ok ${String(args)}`;
      },
    });
    const context = await launch();
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
    });
    page.on('request', (req) => {
      if (!req.url().startsWith(base) && !req.url().startsWith('data:')) problems.push(`outside request: ${req.url()}`);
    });

    await page.goto(`${base}/#/jobs`);
    await page.locator('#live.live').waitFor({ timeout: 10_000 });
    await page.evaluate(() => {
      (globalThis as { marker?: number }).marker = 42; // gone if the page ever reloads
    });

    // 1. A job submitted with the CLI appears, then turns DONE, without a reload.
    const submitted = await cli(address, ['submit', 'hello dashboard']);
    expect(submitted.code).toBe(0);
    const row1 = page.locator('tr[data-job-id="1"]');
    await row1.locator('.state.DONE').waitFor({ timeout: 10_000 });
    await expect.poll(() => row1.locator('td').nth(1).textContent()).toBe('sha256');

    // Read-only until the page has the token.
    const failed = await cli(address, ['submit', '--kind', 'flaky', 'first']);
    expect(failed.code).not.toBe(0);
    await page.locator('nav a[data-view="failed"]').click();
    const row2 = page.locator('tr[data-job-id="2"]');
    await row2.locator('.state.FAILED').waitFor({ timeout: 10_000 });
    expect(await row2.locator('button[data-action="retry"]').isDisabled()).toBe(true);
    await page.fill('#token-input', TOKEN);
    await page.locator('#token-form button[type="submit"]').click();
    await page.locator('#auth', { hasText: 'token set' }).waitFor();

    // 2. Retry the failed job from the Failed view; it turns DONE.
    failing = false;
    await row2.locator('button[data-action="retry"]').click();
    await page.goto(`${base}/#/jobs/2`).catch(() => undefined); // same document: only the hash changes
    await page.locator('#job-state .state.DONE').waitFor({ timeout: 10_000 });
    await expect.poll(() => page.locator('#job-result pre').textContent()).toBe('ok first');

    // 3. Pause sha256 from the Queues view; the CLI sees nothing dispatched; resume runs it.
    await page.locator('nav a[data-view="queues"]').click();
    await page.locator('tr[data-kind="sha256"] button[data-action="pause"]').click();
    await page.locator('tr[data-kind="sha256"] .tag.paused').waitFor({ timeout: 10_000 });
    const held = await cli(address, ['submit', '--wait-timeout', '500', 'held while paused']);
    expect(held.code).toBe(4); // the wait ran out: still queued
    const status = await cli(address, ['status', '3', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ id: 3, state: 'QUEUED', attempts: 0 });
    await page.locator('tr[data-kind="sha256"] button[data-action="resume"]').click();
    expect((await cli(address, ['wait', '3'])).code).toBe(0);

    // 4. Purge asks for the kind's name before it cancels anything.
    const client = await connectClient(address);
    await client.enqueueMany([1, 2, 3].map((i) => ({ kind: 'idle', args: String(i) })));
    const idleRow = page.locator('tr[data-kind="idle"]');
    await idleRow.waitFor({ timeout: 10_000 });
    await idleRow.locator('button[data-action="purge"]').click();
    const confirm = page.locator('dialog#confirm button[data-action="confirm"]');
    expect(await confirm.isDisabled()).toBe(true);
    await page.fill('dialog#confirm input', 'idle');
    await confirm.click();
    await expect.poll(async () => (await client.stats()).kinds['idle']?.queued ?? 0, { timeout: 10_000 }).toBe(0);

    expect(await page.evaluate(() => (globalThis as { marker?: number }).marker)).toBe(42);

    const out = process.env['TASKWIRE_SCREENSHOT'];
    if (out !== undefined && out !== '') {
      failing = true; // some red in the chart
      await docsScreenshot(page, base, address, resolve(ROOT, out));
    }
    await page.locator('nav a[data-view="overview"]').click();
    await page.locator('#c-queued').waitFor();
    const shot = join(await mkdtemp(join(tmpdir(), 'taskwire-shot-')), 'dashboard.png');
    await page.screenshot({ path: shot });
    expect(existsSync(shot)).toBe(true);
    expect(problems).toEqual([]);
  });
});

/** A few seconds of mixed load, then the overview, for the README (only with TASKWIRE_SCREENSHOT). */
async function docsScreenshot(page: Page, base: string, address: string, path: string): Promise<void> {
  const client = await connectClient(address);
  await startWorker(address, { name: 'worker-b', capabilities: ['sha256', 'add'], concurrency: 8 });
  const until = Date.now() + 12_000;
  let i = 0;
  while (Date.now() < until) {
    const batch = Array.from({ length: 150 + Math.round(100 * Math.sin(i / 3)) }, (_, j) => ({ kind: j % 3 === 0 ? 'add' : 'sha256', args: j % 3 === 0 ? [i, j] : `doc ${i} ${j}` }));
    await client.submitMany(batch);
    if (i % 4 === 0) await client.enqueue('flaky', `batch ${i}`).then((j) => client.wait(j.id)).catch(() => undefined);
    i++;
  }
  await client.enqueueMany(Array.from({ length: 40 }, (_, j) => ({ kind: 'report', args: `q${j}` })));
  await page.goto(`${base}/#/overview`);
  await page.locator('#c-queued', { hasText: '40' }).waitFor({ timeout: 10_000 });
  await page.screenshot({ path });
}
