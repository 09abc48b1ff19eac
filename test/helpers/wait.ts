/**
 * Waits until `predicate` holds, checking every few ms, and fails with `what`
 * after `timeoutMs`. For conditions no event announces (a counter inside the
 * scheduler); where an event exists, wait for the event instead.
 */
export async function waitFor(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
