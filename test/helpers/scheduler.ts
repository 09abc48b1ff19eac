import { onTestFinished } from 'vitest';
import { Scheduler, type SchedulerOptions } from '../../src/server.js';

/** Starts an in-process scheduler on a free loopback port; destroyed when the test ends. */
export async function startScheduler(opts: Partial<SchedulerOptions> = {}) {
  const scheduler = new Scheduler({ host: '127.0.0.1', port: 0, logLevel: 'silent', ...opts });
  const { port } = await scheduler.listen();
  onTestFinished(() => scheduler.destroy());
  return { scheduler, port, address: `127.0.0.1:${port}` };
}
