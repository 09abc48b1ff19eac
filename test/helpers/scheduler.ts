import { once } from 'node:events';
import { createServer } from 'node:net';
import { onTestFinished } from 'vitest';
import { Client } from '../../src/client.js';
import { Scheduler, type SchedulerOptions } from '../../src/server.js';

/** Starts an in-process scheduler on a free loopback port; destroyed when the test ends. */
export async function startScheduler(opts: Partial<SchedulerOptions> = {}) {
  const scheduler = new Scheduler({ host: '127.0.0.1', port: 0, logLevel: 'silent', ...opts });
  const { port } = await scheduler.listen();
  onTestFinished(() => scheduler.destroy());
  return { scheduler, port, address: `127.0.0.1:${port}` };
}

/** A connected client, destroyed when the test ends. */
export async function connectClient(address: string): Promise<Client> {
  const client = await Client.connect(address);
  onTestFinished(() => client.destroy());
  return client;
}

/** A loopback port nothing listens on: opened, then closed. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}
