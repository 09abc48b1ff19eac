/**
 * `npm run bench`: taskwire's throughput, scale, latency, memory and journal
 * figures, next to a raw-TCP baseline and, for latency, a do-nothing Node
 * relay's floor (bench/relay-floor.ts), both measured in the same run
 * (issues 5 and 9, docs/PERFORMANCE.md). Throughput is measured first as a
 * user gets it: CLI workers with no tuning flag, fresh processes, no warm-up; every
 * other configuration (`--tuned`, `--concurrency`, `--warmup`, `--tls`) is
 * labelled with its settings. Starts every process it needs itself, on
 * loopback port 0, and kills them all at the end (also on errors and SIGINT).
 *
 * Progress goes to stderr; results to stdout as a table, or one JSON
 * object with `--json`. Exits 1 if a phase fails or a result is wrong
 * (a missed performance target is reported, not an error).
 */
import { hash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { Client as ClientClass, ConnectOptions, JobResult, SubmitItem, WorkerInfo } from '../src/client.js';
import { FrameScanner, makeFrame } from './framing.js';
import { makeBenchPki, removeBenchPki, type BenchPki } from './pki.js';
import { summarise, type CpuProfile } from './profile-summary.js';
import { cpuOf, entryOf, installCleanup, killAll, peakRssOf, ROOT, rssOf, spawnNode, type Proc, type Runtime } from './procs.js';
import { measureRelayFloor } from './relay-floor.js';
import type {
  BaselineResult,
  JournalModeResult,
  JournalResult,
  LatencyResult,
  MemoryResult,
  ProcCpu,
  ProfileSummary,
  Report,
  ScaleEntry,
  ScaleResult,
  ScaleSpan,
  Target,
  ThroughputResult,
} from './report.js';
import { makeInput, sequentialLoop } from './sequential.js';
import { fmtBytes, fmtInt, fmtRatio, percentiles, round } from './stats.js';

// ---------------------------------------------------------------------------
// Options

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

const PHASES = ['baseline', 'throughput', 'scale', 'latency', 'memory', 'journal'] as const;
type Phase = (typeof PHASES)[number];

/** The `--tuned` configuration: deep pipelines and a warm JIT (issue 5's old defaults). */
const TUNED_CONCURRENCY = 64;

interface Options {
  n: number;
  workers: number;
  /** Worker `--concurrency`; undefined: the flag is not passed, the worker's default applies. */
  concurrency: number | undefined;
  window: number;
  warmup: number;
  /** Also run the tuned configuration (c=64, `tunedWarmup` warm-up jobs). */
  tuned: boolean;
  tunedWarmup: number;
  /** Scheduler, workers and clients over TLS (throwaway certificates); the echo baseline stays plain. */
  tls: boolean;
  /** Scale phase: jobs queued, then drained (the deep-queue point). */
  deepJobs: number;
  /** Scale phase: worker connections of the many-workers point. */
  manyWorkers: number;
  latencyN: number;
  latencyWarmup: number;
  memoryJobs: number;
  journalN: number;
  journalAlwaysN: number;
  baselineN: number;
  payloadBytes: number;
  runtime: Runtime;
  json: boolean;
  skip: Set<Phase>;
  /** Directory for CPU profiles of the scheduler, worker and client processes, summarised after the table. */
  profile: string | undefined;
  /** The worker entry point (default src/worker.ts; bench/mini-worker.ts for the bare protocol). */
  workerScript: string;
}

const USAGE = `Usage: npm run bench [-- options]

Measures taskwire end to end against a raw TCP baseline (docs/PERFORMANCE.md).
The throughput phase runs the first configuration twice: as it is, then with a
journal (--data-dir, --fsync batch; labelled "journal").

Options:
  --n N                 jobs in the throughput phase (default 100000)
  --workers W           worker processes (default 2)
  --concurrency C       worker --concurrency (default: not passed, the worker's own
                        default, 4; the worker's default --prefetch always applies)
  --window N            client pipelining window, jobs in flight (default 10000)
  --warmup N            warm-up jobs before the throughput phase (default 0: cold)
  --tuned               also measure a tuned throughput configuration: concurrency ${TUNED_CONCURRENCY},
                        warm-up 10000 jobs (labelled "tuned" in the report)
  --tls                 scheduler, workers and clients over TLS, with a throwaway CA and
                        certificate made by the openssl binary (the echo baseline stays
                        plain TCP)
  --deep-jobs N         scale phase: jobs queued with their kind paused, then drained by
                        --workers CLI workers at their defaults, warmed up with --n jobs
                        (default 1000000)
  --many-workers N      scale phase: worker connections, in --workers processes
                        (bench/worker-host.ts), running --n jobs (default 128)
  --latency-n N         sequential round trips measured (default 5000), through taskwire
                        and, just before, through a do-nothing Node relay (the floor:
                        bench/relay-floor.ts)
  --latency-warmup N    ... after this many unmeasured ones (default 500: issue 9's
                        method; a larger value, e.g. 5000, shows the warm steady state)
  --memory-jobs N       jobs queued for the memory figure (default 1000000)
  --journal-n N         jobs per journal mode (memory, batch) (default 100000)
  --journal-always-n N  jobs with --fsync always (one fsync each) (default 5000)
  --baseline-n N        messages of the echo baseline (default 500000)
  --payload-bytes N     sha256 input size, bytes (default 32); larger sizes scale the
                        defaults of --n, --window, the tuned warm-up, --deep-jobs,
                        --memory-jobs and --journal-n down (at most ~2 GiB through the
                        scheduler)
  --runtime tsx|dist    run src/*.ts via tsx (default) or the built dist/*.js
  --skip LIST           phases to skip: ${PHASES.join(',')}
  --json                print one JSON object instead of the table
  --worker-script F     worker entry point (default src/worker.ts; bench/mini-worker.ts
                        is a bare protocol-only worker, for comparison)
  --profile DIR         CPU profiles in DIR, one directory per process and configuration:
                        scheduler and workers (--cpu-prof, their whole life) and the client
                        (its measured part); prints a summary of each process's (busy ms,
                        top functions by self time) after the table
  -h, --help            show this help
`;

function parseOptions(argv: string[]): Options {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      n: { type: 'string' },
      workers: { type: 'string' },
      concurrency: { type: 'string' },
      window: { type: 'string' },
      warmup: { type: 'string' },
      'deep-jobs': { type: 'string' },
      'many-workers': { type: 'string' },
      'latency-n': { type: 'string' },
      'latency-warmup': { type: 'string' },
      'memory-jobs': { type: 'string' },
      'journal-n': { type: 'string' },
      'journal-always-n': { type: 'string' },
      'baseline-n': { type: 'string' },
      'payload-bytes': { type: 'string' },
      runtime: { type: 'string' },
      skip: { type: 'string' },
      profile: { type: 'string' },
      'worker-script': { type: 'string' },
      tuned: { type: 'boolean' },
      tls: { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  if (positionals.length > 0) throw new Error(`unexpected argument "${positionals[0]}"`);
  const int = (name: string, text: string | undefined, fallback: number, min = 0): number => {
    if (text === undefined) return fallback;
    const x = Number(text);
    if (!Number.isInteger(x) || x < min) throw new Error(`--${name} must be an integer >= ${min}, got "${text}"`);
    return x;
  };
  const runtime = values.runtime ?? 'tsx';
  if (runtime !== 'tsx' && runtime !== 'dist') throw new Error(`--runtime must be tsx or dist, got "${runtime}"`);
  if (runtime === 'dist' && !existsSync(join(ROOT, 'dist/server.js'))) throw new Error('--runtime dist: run `npm run build` first');
  const skip = new Set<Phase>();
  for (const s of (values.skip ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '')) {
    if (!(PHASES as readonly string[]).includes(s)) throw new Error(`--skip: unknown phase "${s}" (phases: ${PHASES.join(', ')})`);
    skip.add(s as Phase);
  }
  const payloadBytes = int('payload-bytes', values['payload-bytes'], 32, 1);
  // Big payloads scale the defaults down, so a run moves a few GiB at most.
  const scaled = (full: number, budgetBytes: number): number => Math.max(1, Math.min(full, Math.floor(budgetBytes / payloadBytes)));
  return {
    n: int('n', values.n, scaled(100_000, 2 * GIB), 1),
    workers: int('workers', values.workers, 2, 1),
    concurrency: values.concurrency === undefined ? undefined : int('concurrency', values.concurrency, 0, 1),
    window: int('window', values.window, Math.max(64, scaled(10_000, 64 * MIB)), 1),
    warmup: int('warmup', values.warmup, 0),
    tuned: values.tuned ?? false,
    tunedWarmup: scaled(10_000, 256 * MIB),
    tls: values.tls ?? false,
    deepJobs: int('deep-jobs', values['deep-jobs'], scaled(1_000_000, 512 * MIB), 1),
    manyWorkers: int('many-workers', values['many-workers'], 128, 1),
    latencyN: int('latency-n', values['latency-n'], 5_000, 1),
    latencyWarmup: int('latency-warmup', values['latency-warmup'], 500),
    memoryJobs: int('memory-jobs', values['memory-jobs'], scaled(1_000_000, 512 * MIB), 1),
    journalN: int('journal-n', values['journal-n'], scaled(100_000, 512 * MIB), 1),
    journalAlwaysN: int('journal-always-n', values['journal-always-n'], 5_000, 1),
    baselineN: int('baseline-n', values['baseline-n'], 500_000, 1),
    payloadBytes,
    runtime,
    json: values.json ?? false,
    skip,
    profile: values.profile,
    workerScript: values['worker-script'] ?? 'src/worker.ts',
  };
}

// ---------------------------------------------------------------------------
// Small helpers

/** The client library under test: src/ through tsx, or dist/ with --runtime dist (set in main). */
let Client: typeof ClientClass;

/** With --tls: the throwaway CA and scheduler certificate (made in main, deleted at the end). */
let pki: BenchPki | undefined;

/** Connects a bench client to `address`, over TLS (verified against the bench CA) with --tls. */
function connectClient(address: string, name: string): Promise<ClientClass> {
  const o: ConnectOptions = { name };
  if (pki !== undefined) o.tls = { ca: readFileSync(pki.ca) };
  return Client.connect(address, o);
}

/** Scheduler command-line flags for TLS (none without --tls). */
function schedulerTlsArgs(): string[] {
  return pki === undefined ? [] : ['--tls-cert', pki.cert, '--tls-key', pki.key];
}

async function loadClient(runtime: Runtime): Promise<typeof ClientClass> {
  if (runtime === 'tsx') return (await import('../src/client.js')).Client;
  const mod = (await import(pathToFileURL(join(ROOT, 'dist/client.js')).href)) as typeof import('../src/client.js');
  return mod.Client;
}

/** CPU time of the whole machine so far, in USER_HZ ticks summed over CPUs: busy (not idle or iowait) and total; 0s elsewhere. */
function machineCpu(): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    return { busy: total - (v[3] ?? 0) - (v[4] ?? 0), total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/** Share of all CPU time that was busy over the next `ms`, from /proc/stat; 0 elsewhere. */
async function cpuBusyShare(ms: number): Promise<number> {
  const a = machineCpu();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = machineCpu();
  return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;
}

/** One process's CPU over a measurement, per job (`elapsed` in seconds). */
function cpuRow(name: string, userMs: number, sysMs: number, elapsed: number, jobs: number): ProcCpu {
  const ms = userMs + sysMs;
  return { name, cpuMs: round(ms), sysShare: ms > 0 ? round(sysMs / ms, 3) : 0, cores: round(ms / 1000 / elapsed, 3), usPerJob: round((ms * 1000) / jobs, 3) };
}

/**
 * Cores' worth of busy CPU time the machine spent on anything but the bench's processes
 * (`ourMs` of CPU) between two machineCpu() readings `elapsed` seconds apart (USER_HZ is 100
 * on Linux): another tenant's work during the measurement, which jobs/s silently absorbs.
 * NaN under half a second, where a 10 ms tick alone would read as cores' worth.
 */
function otherCoresOf(a: { busy: number; total: number }, b: { busy: number; total: number }, ourMs: number, elapsed: number): number {
  return b.total > a.total && elapsed >= 0.5 ? Math.max(0, ((b.busy - a.busy) * 10 - ourMs) / 1000 / elapsed) : NaN;
}

/** Newest modification time of the files under `dir`, ms. */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

/** Seconds since `t0` (from process.hrtime.bigint()). */
function secondsSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}


function sha256Hex(s: string): string {
  return hash('sha256', s, 'hex');
}

function* sha256Items(count: number, bytes: number, offset: number): Generator<SubmitItem> {
  for (let i = 0; i < count; i++) yield { kind: 'sha256', args: makeInput(offset + i, bytes) };
}

/** Outcomes checked against the expected digests; the first problem is kept for the log. */
interface Check {
  verified: number;
  failed: number;
  wrong: number;
  firstProblem: string;
}

function newCheck(): Check {
  return { verified: 0, failed: 0, wrong: 0, firstProblem: '' };
}

function checkResult(c: Check, i: number, r: JobResult | Error, expected: string): void {
  if (r instanceof Error) {
    c.failed++;
    c.firstProblem ||= `job ${i}: ${r.message}`;
  } else if (r.text() === expected) {
    c.verified++;
  } else {
    c.wrong++;
    c.firstProblem ||= `job ${i}: got ${r.text()}, expected ${expected}`;
  }
}

interface Cluster {
  scheduler: Proc;
  address: string;
  workers: Proc[];
}

// ---------------------------------------------------------------------------
// Profiles (--profile)

/** Every profile directory of this run, numbered in order, and when it was handed out (ms). */
const profileDirs: Array<{ dir: string; since: number }> = [];

/** A new directory under `root` for one process's profile, e.g. `03-scheduler-latency`. */
function profileDir(root: string, label: string): string {
  const dir = join(root, `${String(profileDirs.length + 1).padStart(2, '0')}-${label.replace(/[^a-z0-9-]+/gi, '-').replace(/-+$/, '')}`);
  profileDirs.push({ dir, since: Date.now() });
  return dir;
}

/** Node arguments that make a child write a CPU profile named after `label` (with --profile). */
function profileArgs(opts: Options, label: string): string[] {
  if (opts.profile === undefined) return [];
  // One directory per process: tsx's loader thread writes a profile of its own next to the main thread's.
  return ['--cpu-prof', '--cpu-prof-dir', profileDir(opts.profile, label)];
}

/** A profile of this process in progress; `stop` writes it (and does nothing without --profile). */
interface ClientProfile {
  stop(): Promise<void>;
}

/**
 * With --profile: starts profiling this process (the client) until `stop`, which writes
 * DIR/NN-client-<label>/client.cpuprofile next to the children's. Started just before a
 * phase's measured part and stopped after its figures are taken, so the profile holds what
 * the figures hold (not the inputs' hashing before, nor stopping it). Without --profile there
 * is no inspector session at all: the figures pay nothing.
 */
async function profileClient(opts: Options, label: string): Promise<ClientProfile> {
  if (opts.profile === undefined) return { stop: () => Promise.resolve() };
  const dir = profileDir(opts.profile, `client-${label}`);
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  // --cpu-prof's default interval, so the client's profile reads like the children's.
  await session.post('Profiler.setSamplingInterval', { interval: 1000 });
  await session.post('Profiler.start');
  return {
    async stop() {
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'client.cpuprofile'), JSON.stringify(profile));
    },
  };
}

/**
 * The main thread's profile among those in `dir` written since `since` (an earlier run's
 * into the same DIR are left alone): V8 writes one file per thread, and under tsx the loader
 * thread has one too, with few samples.
 */
function mainProfileOf(dir: string, since: number): { file: string; profile: CpuProfile } | undefined {
  if (!existsSync(dir)) return undefined;
  let best: { file: string; profile: CpuProfile } | undefined;
  for (const name of readdirSync(dir)) {
    const file = join(dir, name);
    if (!name.endsWith('.cpuprofile') || statSync(file).mtimeMs < since) continue;
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    if (best === undefined || (profile.samples?.length ?? 0) > (best.profile.samples?.length ?? 0)) best = { file, profile };
  }
  return best;
}

/** Every profile of this run summarised, in order; a process that wrote none gets a note instead. */
function summariseProfiles(notes: string[]): ProfileSummary[] {
  const out: ProfileSummary[] = [];
  for (const { dir, since } of profileDirs) {
    const found = mainProfileOf(dir, since);
    if (found === undefined) {
      notes.push(`no CPU profile in ${dir}: the process was killed before it wrote one`);
      continue;
    }
    const { items, busyMs } = summarise(found.profile);
    // Samples can carry no time (the last one; V8 zero deltas): a function with only those is not a top one.
    const timed = items.filter((it) => it.selfMs > 0);
    out.push({
      dir: basename(dir),
      file: found.file,
      busyMs: round(busyMs, 4),
      top: timed.slice(0, 8).map((it) => ({ name: it.name, sharePct: round(it.share * 100, 3), ms: round(it.selfMs, 3) })),
    });
  }
  return out;
}

/** With --profile, children get SIGTERM and time to write their profile; else SIGKILL. */
function stop(opts: Options, proc: Proc): Promise<void> {
  return proc.kill(opts.profile === undefined ? undefined : 10_000);
}

async function startScheduler(opts: Options, extra: string[] = [], label = 'scheduler'): Promise<{ proc: Proc; address: string }> {
  const entry = entryOf(opts.runtime, 'src/server.ts', profileArgs(opts, label));
  const proc = spawnNode(label, entry, ['--port', '0', '--log-level', 'error', ...schedulerTlsArgs(), ...extra]);
  const m = await proc.waitFor(/taskwire scheduler listening on (\S+):(\d+)/);
  return { proc, address: `127.0.0.1:${m[2]}` };
}

/**
 * Starts a worker as a user would: `-c sha256` and no tuning flag, except
 * `--concurrency` when `concurrency` is given (undefined: the worker's default).
 */
async function startWorker(opts: Options, address: string, name: string, concurrency: number | undefined): Promise<Proc> {
  const args = ['--server', address, '--name', name, '-c', 'sha256', '--log-level', 'error'];
  if (concurrency !== undefined) args.push('--concurrency', String(concurrency));
  if (pki !== undefined) args.push('--tls', '--tls-ca', pki.ca);
  const proc = spawnNode(name, (opts.workerScript.startsWith('src/')
    ? entryOf(opts.runtime, opts.workerScript, profileArgs(opts, name))
    : entryOf('tsx', opts.workerScript, profileArgs(opts, name))), args);
  await proc.waitFor(/taskwire worker \S+ connected to/);
  return proc;
}

async function startCluster(opts: Options, label: string, workers: number, concurrency: number | undefined, schedulerArgs: string[] = []): Promise<Cluster> {
  const { proc, address } = await startScheduler(opts, schedulerArgs, `scheduler (${label})`);
  const ws = await Promise.all(
    Array.from({ length: workers }, (_, i) => startWorker(opts, address, `${label}-w${i + 1}`, concurrency)),
  );
  return { scheduler: proc, address, workers: ws };
}

async function stopCluster(opts: Options, c: Cluster): Promise<void> {
  // Workers first: a scheduler that goes first would send them reconnecting.
  await Promise.all(c.workers.map((w) => stop(opts, w)));
  await stop(opts, c.scheduler);
}

function workerAvailable(opts: Options): boolean {
  return existsSync(join(ROOT, opts.workerScript));
}

// ---------------------------------------------------------------------------
// Phase: baseline (raw framed TCP echo between two Node processes)


const BASELINE_PAYLOAD = 40;

async function connectRaw(address: string): Promise<Socket> {
  const [host, port] = address.split(':');
  const socket = netConnect({ host: host!, port: Number(port) });
  socket.setNoDelay(true);
  await once(socket, 'connect');
  return socket;
}

/** Pipelined: batches of 1,000 frames, at most `window` messages in flight, until `total` have come back. */
function echoThroughput(socket: Socket, total: number, window: number): Promise<number> {
  const batch = 1000;
  const frame = makeFrame(0x21, BASELINE_PAYLOAD, 0x61);
  const batchBuf = Buffer.concat(Array.from({ length: batch }, () => frame));
  const scanner = new FrameScanner();
  let sent = 0;
  let received = 0;
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const pump = (): void => {
      while (sent < total && sent - received + batch <= window) {
        const k = Math.min(batch, total - sent);
        socket.write(k === batch ? batchBuf : batchBuf.subarray(0, k * frame.length));
        sent += k;
      }
    };
    const onData = (chunk: Buffer): void => {
      received += scanner.push(chunk).frames;
      if (received >= total) {
        socket.off('data', onData);
        resolve(total / secondsSince(t0));
        return;
      }
      pump();
    };
    socket.on('data', onData);
    socket.once('error', reject);
    pump();
  });
}

/** Sequential: one frame out, wait for it to come back; `count` times, in µs. */
async function echoLatency(socket: Socket, count: number): Promise<Float64Array> {
  const frame = makeFrame(0x21, BASELINE_PAYLOAD, 0x62);
  const scanner = new FrameScanner();
  let wake: (() => void) | undefined;
  const onData = (chunk: Buffer): void => {
    if (scanner.push(chunk).frames > 0) wake?.();
  };
  socket.on('data', onData);
  const samples = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    const back = new Promise<void>((resolve) => {
      wake = resolve;
    });
    socket.write(frame);
    await back;
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  socket.off('data', onData);
  return samples;
}

async function runBaseline(opts: Options): Promise<BaselineResult> {
  log('baseline: starting the echo peer');
  const echo = spawnNode('echo', entryOf('tsx', 'bench/echo.ts'), []);
  try {
    const m = await echo.waitFor(/echo listening on (\S+)/);
    const socket = await connectRaw(m[1]!);
    const window = opts.window;
    await echoThroughput(socket, Math.min(100_000, opts.baselineN), window); // warm-up
    log(`baseline: ${fmtInt(opts.baselineN)} framed ${BASELINE_PAYLOAD}-byte messages, pipelined`);
    const msgsPerSec = await echoThroughput(socket, opts.baselineN, window);
    await echoLatency(socket, opts.latencyWarmup);
    log(`baseline: ${fmtInt(opts.latencyN)} sequential round trips`);
    const rtt = await echoLatency(socket, opts.latencyN);
    socket.destroy();
    return { messages: opts.baselineN, payloadBytes: BASELINE_PAYLOAD, msgsPerSec, rttUs: percentiles(rtt), rttSamples: rtt.length };
  } finally {
    await echo.kill();
  }
}

// ---------------------------------------------------------------------------
// Phase: throughput

/** One throughput configuration; each runs on fresh processes. */
interface ThroughputConfig {
  /** 'defaults' (what a user gets first), 'tuned' (--tuned), or 'custom' (--concurrency, --warmup or --worker-script given). */
  name: ThroughputResult['config'];
  /** Worker `--concurrency`; undefined: not passed. */
  concurrency: number | undefined;
  warmup: number;
  /** With a journal: `--data-dir` (a temporary one) and this `--fsync`. */
  fsync?: 'batch';
}

/** The configurations this run measures, the first one first: the defaults unless overridden. */
function throughputConfigs(opts: Options): ThroughputConfig[] {
  const first: ThroughputConfig = {
    // The defaults are the real worker CLI's: mini-worker's own differ.
    name: opts.concurrency === undefined && opts.warmup === 0 && opts.workerScript === 'src/worker.ts' ? 'defaults' : 'custom',
    concurrency: opts.concurrency,
    warmup: opts.warmup,
  };
  // The same again with a journal (issue 9: `--fsync batch` end to end at least 0.6 of it).
  const journal: ThroughputConfig = { name: 'journal', concurrency: first.concurrency, warmup: first.warmup, fsync: 'batch' };
  return opts.tuned ? [first, journal, { name: 'tuned', concurrency: TUNED_CONCURRENCY, warmup: opts.tunedWarmup }] : [first, journal];
}

/** The settings a throughput result's rows carry, e.g. `defaults: c=4, no warm-up, tls`. */
function throughputLabel(r: ThroughputResult): string {
  const settings = [`c=${r.concurrency}`, r.warmup === 0 ? 'no warm-up' : `warm-up ${r.warmup}`];
  if (r.fsync !== null) settings.push(`--fsync ${r.fsync}`);
  if (r.tls) settings.push('tls');
  return r.config === 'custom' ? settings.join(', ') : `${r.config}: ${settings.join(', ')}`;
}

async function runThroughput(opts: Options, cfg: ThroughputConfig): Promise<ThroughputResult> {
  // Inputs and their digests first: hashing gigabytes while connected would block the
  // client's event loop past the heartbeat deadline.
  const inputs = Array.from({ length: opts.n }, (_, i) => makeInput(i, opts.payloadBytes));
  const expected = inputs.map(sha256Hex);
  const items: SubmitItem[] = inputs.map((args) => ({ kind: 'sha256', args }));
  const what = cfg.concurrency === undefined ? 'worker defaults' : `--concurrency ${cfg.concurrency}`;
  log(`throughput (${cfg.name}): starting a scheduler and ${opts.workers} worker(s), ${what}${pki === undefined ? '' : ', TLS'}${cfg.fsync === undefined ? '' : `, --fsync ${cfg.fsync}`}`);
  const dataDir = cfg.fsync === undefined ? undefined : mkdtempSync(join(tmpdir(), 'taskwire-bench-'));
  const journalArgs = dataDir === undefined || cfg.fsync === undefined ? [] : ['--data-dir', dataDir, '--fsync', cfg.fsync];
  const cluster = await startCluster(opts, `throughput-${cfg.name}`, opts.workers, cfg.concurrency, journalArgs);
  try {
    const client = await connectClient(cluster.address, 'bench');
    const ws = await client.workers();
    if (ws.length !== opts.workers) throw new Error(`expected ${opts.workers} workers, the scheduler has ${ws.length}`);
    if (cfg.warmup > 0) {
      log(`throughput (${cfg.name}): warm-up, ${fmtInt(cfg.warmup)} jobs`);
      const warm = await client.submitMany(sha256Items(cfg.warmup, opts.payloadBytes, 1_000_000_000), { window: opts.window });
      const bad = warm.filter((r) => r instanceof Error).length;
      if (bad > 0) throw new Error(`warm-up: ${bad} jobs failed: ${String(warm.find((r) => r instanceof Error))}`);
    }
    // Logged before the measurement: fmtInt's first call (ICU) costs the client ~10 ms.
    log(`throughput (${cfg.name}): ${fmtInt(opts.n)} sha256 jobs of ${opts.payloadBytes} bytes, window ${opts.window}`);
    const procs: Proc[] = [cluster.scheduler, ...cluster.workers];
    const prof = await profileClient(opts, `throughput-${cfg.name}`);
    const cpu0 = procs.map((p) => cpuOf(p.pid));
    const self0 = process.cpuUsage();
    const machine0 = machineCpu();
    const t0 = process.hrtime.bigint();
    const results = await client.submitMany(items, { window: opts.window });
    const elapsed = secondsSince(t0);
    const self1 = process.cpuUsage(self0);
    const machine1 = machineCpu();
    const cpu = procs.map((p, i): ProcCpu => {
      const now = cpuOf(p.pid);
      return cpuRow(i === 0 ? 'scheduler' : `worker ${i}`, now.userMs - cpu0[i]!.userMs, now.sysMs - cpu0[i]!.sysMs, elapsed, opts.n);
    });
    cpu.unshift(cpuRow('client', self1.user / 1000, self1.system / 1000, elapsed, opts.n));
    const otherCores = otherCoresOf(machine0, machine1, cpu.reduce((sum, c) => sum + c.cpuMs, 0), elapsed);
    await prof.stop();
    const check = newCheck();
    results.forEach((r, i) => checkResult(check, i, r, expected[i]!));
    const { verified, failed, wrong } = check;
    if (verified !== opts.n) log(`throughput (${cfg.name}): ${failed} failed, ${wrong} wrong; first: ${check.firstProblem}`);
    await client.close({ timeoutMs: 2_000 });
    // What the workers declared, as the scheduler saw it: the truth even when no flag was passed.
    const declared = ws[0]!;
    return {
      config: cfg.name,
      fsync: cfg.fsync ?? null,
      tls: pki !== undefined,
      n: opts.n,
      workers: opts.workers,
      concurrency: declared.concurrency,
      concurrencyFlag: cfg.concurrency ?? null,
      prefetch: declared.prefetch ?? 0,
      warmup: cfg.warmup,
      window: opts.window,
      payloadBytes: opts.payloadBytes,
      elapsedMs: round(elapsed * 1000),
      jobsPerSec: round(opts.n / elapsed),
      verified,
      failed,
      wrong,
      cpu,
      usPerJobTotal: round(cpu.reduce((sum, c) => sum + c.usPerJob, 0), 3),
      otherCores: round(otherCores, 3),
      schedulerRssBytes: rssOf(cluster.scheduler.pid),
      schedulerPeakRssBytes: peakRssOf(cluster.scheduler.pid),
    };
  } finally {
    await stopCluster(opts, cluster);
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// Phase: scale (issue 9: per-job cost flat with a deep queue and with many workers)

/** CPU used so far by this process (the client) and by `procs` (the scheduler, then workers), and when. */
interface CpuMark {
  at: bigint;
  client: NodeJS.CpuUsage;
  procs: Array<{ userMs: number; sysMs: number }>;
  machine: { busy: number; total: number };
}

function cpuMark(procs: Proc[]): CpuMark {
  return { at: process.hrtime.bigint(), client: process.cpuUsage(), procs: procs.map((p) => cpuOf(p.pid)), machine: machineCpu() };
}

/** Rate and CPU per job between two marks `jobs` jobs apart: client, scheduler, and the worker processes summed. */
function spanOf(a: CpuMark, b: CpuMark, jobs: number): ScaleSpan {
  const elapsed = Number(b.at - a.at) / 1e9;
  let userMs = 0;
  let sysMs = 0;
  for (let i = 1; i < a.procs.length; i++) {
    userMs += b.procs[i]!.userMs - a.procs[i]!.userMs;
    sysMs += b.procs[i]!.sysMs - a.procs[i]!.sysMs;
  }
  const cpu = [
    cpuRow('client', (b.client.user - a.client.user) / 1000, (b.client.system - a.client.system) / 1000, elapsed, jobs),
    cpuRow('scheduler', b.procs[0]!.userMs - a.procs[0]!.userMs, b.procs[0]!.sysMs - a.procs[0]!.sysMs, elapsed, jobs),
    cpuRow('workers', userMs, sysMs, elapsed, jobs),
  ];
  return { jobs, elapsedMs: round(elapsed * 1000), jobsPerSec: round(jobs / elapsed), cpu, usPerJobTotal: round(cpu.reduce((sum, c) => sum + c.usPerJob, 0), 3) };
}

/**
 * Waits for the outcome of every job in `ids`: WATCHes in id order, at most `window` in
 * flight; `onSettled` gets each outcome with the count settled so far.
 */
function waitAll(client: ClientClass, ids: number[], window: number, onSettled: (i: number, r: JobResult | Error, settled: number) => void): Promise<void> {
  return new Promise((resolve) => {
    let next = 0;
    let settled = 0;
    const settle = (i: number, r: JobResult | Error): void => {
      onSettled(i, r, ++settled);
      if (settled === ids.length) resolve();
      else launch();
    };
    const launch = (): void => {
      while (next < ids.length && next - settled < window) {
        const i = next++;
        client.wait(ids[i]!).then(
          (r) => settle(i, r),
          (err: unknown) => settle(i, err instanceof Error ? err : new Error(String(err))),
        );
      }
    };
    launch();
  });
}

/** What both scale points end with: the figures over start..end, the check, and the scheduler's own count of done jobs. */
async function scaleResult(
  opts: Options,
  client: ClientClass,
  cluster: Cluster,
  point: Pick<ScaleResult, 'point' | 'queuedAtStart' | 'warmupJobs' | 'workerConnections' | 'workerProcesses'>,
  declared: WorkerInfo,
  marks: { start: CpuMark; end: CpuMark },
  check: Check,
): Promise<ScaleResult> {
  const span = spanOf(marks.start, marks.end, check.verified + check.failed + check.wrong);
  if (check.verified !== span.jobs) log(`scale (${point.point}): ${check.failed} failed, ${check.wrong} wrong; first: ${check.firstProblem}`);
  const stats = await client.stats();
  await client.close({ timeoutMs: 2_000 });
  const ourMs = span.cpu.reduce((sum, c) => sum + c.cpuMs, 0);
  return {
    ...point,
    ...span,
    tls: pki !== undefined,
    concurrency: declared.concurrency,
    prefetch: declared.prefetch ?? 0,
    window: opts.window,
    payloadBytes: opts.payloadBytes,
    verified: check.verified,
    failed: check.failed,
    wrong: check.wrong,
    doneReported: (stats.kinds['sha256']?.done ?? 0) - point.warmupJobs,
    otherCores: round(otherCoresOf(marks.start.machine, marks.end.machine, ourMs, span.elapsedMs / 1000), 3),
    schedulerPeakRssBytes: peakRssOf(cluster.scheduler.pid),
  };
}

/** The ids of enqueueMany's acks; throws at the first refusal. */
function idsOf(acks: Array<{ id: number } | Error>): number[] {
  return acks.map((a, i) => {
    if (a instanceof Error) throw new Error(`scale: submission ${i} refused: ${a.message}`);
    return a.id;
  });
}

/**
 * Deep queue: `--deep-jobs` jobs queued while the kind is paused, then drained by CLI workers
 * at their defaults, as the throughput phase starts them. The client learns every outcome with
 * a WATCH per job, `--window` in flight, in id order: like the throughput phase's submitMany,
 * every result crosses the scheduler to the client, so the per-job figures compare (polling
 * STATS would cost the client less, and leave the scheduler's result delivery out). The jobs
 * run in id order (one priority), so the WATCHes stay ahead of the drain; one that falls
 * behind still finds its result among the retained ones (the last 100,000 by default).
 *
 * Unlike the throughput phase, the processes are warmed up first (`--n` jobs queued and drained
 * the same way): the first and last tenths of the drain are there to show whether the cost
 * grows with the depth of the queue, and cold, the first tenth costs ~1.6 times the rest,
 * mostly JIT warm-up (the workers, which hold no queue, show it as much).
 */
async function runDeepQueue(opts: Options): Promise<ScaleResult> {
  const q = opts.deepJobs;
  // Digests first, as in the throughput phase: hashing a million inputs while connected
  // would block the client's event loop past the heartbeat deadline.
  const expected = Array.from({ length: q }, (_, i) => sha256Hex(makeInput(i, opts.payloadBytes)));
  log(`scale: deep queue, starting a scheduler and ${opts.workers} worker(s), worker defaults`);
  // The default --max-queued (2,000,000) unless --deep-jobs asks for more.
  const { proc, address } = await startScheduler(opts, ['--max-queued', String(Math.max(2_000_000, q))], 'scheduler (scale-deep)');
  const cluster: Cluster = { scheduler: proc, address, workers: [] };
  try {
    cluster.workers = await Promise.all(Array.from({ length: opts.workers }, (_, i) => startWorker(opts, address, `scale-deep-w${i + 1}`, undefined)));
    const client = await connectClient(address, 'bench-scale');
    const ws = await client.workers();
    if (ws.length !== opts.workers) throw new Error(`scale: expected ${opts.workers} workers, the scheduler has ${ws.length}`);
    const warm = opts.n;
    log(`scale: warm-up, ${fmtInt(warm)} jobs queued and drained`);
    const warmIds = idsOf(await client.enqueueMany(sha256Items(warm, opts.payloadBytes, 1_000_000_000), { window: opts.window }));
    let warmFailed = 0;
    await waitAll(client, warmIds, opts.window, (_, r) => void (warmFailed += r instanceof Error ? 1 : 0));
    if (warmFailed > 0) throw new Error(`scale warm-up: ${warmFailed} jobs failed`);
    // Paused while the queue fills, so it is all there when the drain starts.
    await client.pause('sha256');
    log(`scale: queueing ${fmtInt(q)} jobs of ${opts.payloadBytes} bytes`);
    const procs = [proc, ...cluster.workers];
    const filling = cpuMark(procs);
    const ids = idsOf(await client.enqueueMany(sha256Items(q, opts.payloadBytes, 0), { window: opts.window }));
    const filled = cpuMark(procs);
    log(`scale: draining ${fmtInt(q)} queued jobs`);
    // The first and the last tenth of the drain: the queue at its deepest, and nearly empty.
    const tenth = Math.floor(q / 10);
    let first: CpuMark | undefined;
    let last: CpuMark | undefined;
    const check = newCheck();
    const prof = await profileClient(opts, 'scale-deep');
    const start = cpuMark(procs);
    await client.resume('sha256');
    await waitAll(client, ids, opts.window, (i, r, settled) => {
      checkResult(check, i, r, expected[i]!);
      if (settled === tenth) first = cpuMark(procs);
      if (settled === q - tenth) last = cpuMark(procs);
    });
    const end = cpuMark(procs);
    await prof.stop();
    const point = { point: 'deep-queue', queuedAtStart: q, warmupJobs: warm, workerConnections: opts.workers, workerProcesses: opts.workers } as const;
    const result = await scaleResult(opts, client, cluster, point, ws[0]!, { start, end }, check);
    result.enqueue = spanOf(filling, filled, q);
    if (tenth > 0 && first !== undefined && last !== undefined) {
      result.firstTenth = spanOf(start, first, tenth);
      result.lastTenth = spanOf(last, end, tenth);
    }
    return result;
  } finally {
    await stopCluster(opts, cluster);
  }
}

/**
 * Starts bench/worker-host.ts with `connections` worker connections; resolves once all are
 * connected. Always src/ through tsx, like the memory phase's scheduler host.
 */
async function startWorkerHost(opts: Options, address: string, name: string, connections: number): Promise<Proc> {
  const args = [address, String(connections), name];
  if (pki !== undefined) args.push(pki.ca);
  const proc = spawnNode(name, entryOf('tsx', 'bench/worker-host.ts', profileArgs(opts, name)), args);
  await proc.waitFor(/worker host \S+ ready/);
  return proc;
}

/**
 * Many workers: `--many-workers` worker connections run `--n` jobs submitted as in the throughput
 * phase. The connections live in `--workers` processes, as many as the throughput phase's
 * workers, so only the number of connections differs from it.
 */
async function runManyWorkers(opts: Options): Promise<ScaleResult> {
  const inputs = Array.from({ length: opts.n }, (_, i) => makeInput(i, opts.payloadBytes));
  const expected = inputs.map(sha256Hex);
  const items: SubmitItem[] = inputs.map((args) => ({ kind: 'sha256', args }));
  const hosts = Math.min(opts.workers, opts.manyWorkers);
  log(`scale: starting a scheduler and ${opts.manyWorkers} worker connections in ${hosts} process(es)`);
  const { proc, address } = await startScheduler(opts, [], 'scheduler (scale-many)');
  const cluster: Cluster = { scheduler: proc, address, workers: [] };
  try {
    // The connections split evenly, the first hosts taking one more when they do not divide.
    const share = (i: number): number => Math.floor(opts.manyWorkers / hosts) + (i < opts.manyWorkers % hosts ? 1 : 0);
    cluster.workers = await Promise.all(Array.from({ length: hosts }, (_, i) => startWorkerHost(opts, address, `scale-h${i + 1}`, share(i))));
    const client = await connectClient(address, 'bench-scale');
    const ws = await client.workers();
    if (ws.length !== opts.manyWorkers) throw new Error(`scale: expected ${opts.manyWorkers} worker connections, the scheduler has ${ws.length}`);
    log(`scale: ${fmtInt(opts.n)} sha256 jobs over ${opts.manyWorkers} worker connections, window ${opts.window}`);
    const procs = [proc, ...cluster.workers];
    const prof = await profileClient(opts, 'scale-many');
    const start = cpuMark(procs);
    const results = await client.submitMany(items, { window: opts.window });
    const end = cpuMark(procs);
    await prof.stop();
    const check = newCheck();
    results.forEach((r, i) => checkResult(check, i, r, expected[i]!));
    const point = { point: 'many-workers', queuedAtStart: 0, warmupJobs: 0, workerConnections: opts.manyWorkers, workerProcesses: hosts } as const;
    return await scaleResult(opts, client, cluster, point, ws[0]!, { start, end }, check);
  } finally {
    await stopCluster(opts, cluster);
  }
}

// ---------------------------------------------------------------------------
// Phase: latency


async function runLatency(opts: Options): Promise<LatencyResult> {
  // The floor first, on its own processes: taskwire's figures are read against it.
  log(`latency: floor, ${fmtInt(opts.latencyN)} sequential round trips through a do-nothing Node relay`);
  const floor = await measureRelayFloor({ warmup: opts.latencyWarmup, n: opts.latencyN, payloadBytes: opts.payloadBytes });
  log('latency: starting a scheduler and 1 worker');
  const cluster = await startCluster(opts, 'latency', 1, opts.concurrency);
  try {
    const client = await connectClient(cluster.address, 'bench-latency');
    log(`latency: ${fmtInt(opts.latencyN)} sequential submit-and-wait`);
    // The same loop as the floor's and bench/beanstalkd-latency.ts's (bench/sequential.ts). Its
    // warm-up and input hashing are inside, so the client's profile holds them too.
    const prof = await profileClient(opts, 'latency');
    const { us, verified, cpuUsPerRoundTrip } = await sequentialLoop(
      async (input) => (await client.submit('sha256', input)).text(),
      { warmup: opts.latencyWarmup, n: opts.latencyN, payloadBytes: opts.payloadBytes },
      { scheduler: cluster.scheduler.pid, worker: cluster.workers[0]!.pid },
    );
    await prof.stop();
    await client.close({ timeoutMs: 2_000 });
    return { n: opts.latencyN, payloadBytes: opts.payloadBytes, us, verified, cpuUsPerRoundTrip, floor };
  } finally {
    await stopCluster(opts, cluster);
  }
}

// ---------------------------------------------------------------------------
// Phase: memory (a million queued jobs, no worker)


interface MemSample {
  gc: boolean;
  rss: number;
  heapUsed: number;
  external: number;
  /** Committed bytes per V8 heap space (new_space, old_space, ...). */
  spaces: Record<string, number>;
}

async function readMem(host: Proc, seq: number): Promise<MemSample> {
  host.writeLine('mem');
  const m = await host.waitFor(new RegExp(`^mem ${seq} (\\{.*\\})$`, 'm'), 60_000);
  const body = JSON.parse(m[1]!) as MemSample;
  return { ...body, rss: rssOf(host.pid) || body.rss };
}

async function runMemory(opts: Options): Promise<MemoryResult> {
  log('memory: starting a scheduler (with --expose-gc), no worker');
  const maxQueued = Math.max(2_000_000, opts.memoryJobs + 500_000); // + the warm-up's jobs
  const tlsFiles = pki === undefined ? [] : [pki.cert, pki.key];
  const host = spawnNode('scheduler (memory)', entryOf('tsx', 'bench/scheduler-host.ts', ['--expose-gc', ...profileArgs(opts, 'scheduler-memory')]), [String(maxQueued), ...tlsFiles], {
    stdin: true,
  });
  try {
    const m = await host.waitFor(/taskwire scheduler listening on (\S+):(\d+)/);
    const client = await connectClient(`127.0.0.1:${m[2]}`, 'bench-memory');
    // Warm up before the "before" reading: the submit path, the connection's buffers, and V8's
    // young generation, which grows to its working size (~30 MiB) under any sustained load and
    // stays there. That fixed cost is not per queued job; newSpace* in the result shows it. How
    // many jobs it takes to get there depends on how much garbage each makes, so warm-up rounds
    // go on until the young generation stops growing (at most 5 rounds).
    const warmRound = Math.max(1_000, Math.min(100_000, Math.floor(opts.memoryJobs / 10)));
    let warm = 0;
    let seq = 0;
    let before: MemSample;
    for (let newSpace = -1; ; ) {
      await client.enqueueMany(sha256Items(warmRound, opts.payloadBytes, 2_000_000_000 + warm), { window: opts.window });
      warm += warmRound;
      before = await readMem(host, ++seq);
      if (!before.gc) throw new Error('the memory host has no gc(): --expose-gc was not applied');
      const grown = before.spaces['new_space'] ?? 0;
      if (grown <= newSpace || warm >= 5 * warmRound) break;
      newSpace = grown;
    }
    log(`memory: warmed up with ${fmtInt(warm)} jobs (young generation ${fmtBytes(before.spaces['new_space'] ?? 0)})`);
    log(`memory: queueing ${fmtInt(opts.memoryJobs)} jobs of ${opts.payloadBytes} bytes`);
    const prof = await profileClient(opts, 'memory');
    const t0 = process.hrtime.bigint();
    const acks = await client.enqueueMany(sha256Items(opts.memoryJobs, opts.payloadBytes, 0), { window: opts.window });
    const enqueuePerSec = opts.memoryJobs / secondsSince(t0);
    await prof.stop();
    const refused = acks.filter((r) => r instanceof Error).length;
    if (refused > 0) throw new Error(`memory: ${refused} submissions refused: ${String(acks.find((r) => r instanceof Error))}`);
    const after = await readMem(host, ++seq);
    const stats = await client.stats();
    await client.close({ timeoutMs: 2_000 });
    const jobs = opts.memoryJobs;
    return {
      jobs,
      payloadBytes: opts.payloadBytes,
      queuedReported: stats.totals.queued - warm,
      rssBeforeBytes: before.rss,
      rssAfterBytes: after.rss,
      peakRssBytes: peakRssOf(host.pid),
      heapBeforeBytes: before.heapUsed,
      heapAfterBytes: after.heapUsed,
      externalAfterBytes: after.external,
      newSpaceBeforeBytes: before.spaces['new_space'] ?? NaN,
      newSpaceAfterBytes: after.spaces['new_space'] ?? NaN,
      warmupJobs: warm,
      bytesPerJobRss: round((after.rss - before.rss) / jobs),
      bytesPerJobHeap: round((after.heapUsed - before.heapUsed) / jobs),
      enqueuePerSec: round(enqueuePerSec),
    };
  } finally {
    await stop(opts, host);
  }
}

// ---------------------------------------------------------------------------
// Phase: journal modes (submit throughput, no worker)



async function runJournalMode(opts: Options, mode: JournalModeResult['mode'], jobs: number): Promise<JournalModeResult> {
  const dir = mode === 'memory' ? undefined : mkdtempSync(join(tmpdir(), 'taskwire-bench-'));
  const extra = dir === undefined ? [] : ['--data-dir', dir, '--fsync', mode];
  const { proc, address } = await startScheduler(opts, extra, `scheduler (journal-${mode})`);
  try {
    const client = await connectClient(address, 'bench-journal');
    const warm = Math.min(1_000, jobs);
    await client.enqueueMany(sha256Items(warm, opts.payloadBytes, 2_000_000_000), { window: opts.window });
    log(`journal: ${mode === 'memory' ? 'memory only' : `--fsync ${mode}`}, ${fmtInt(jobs)} submissions`);
    const prof = await profileClient(opts, `journal-${mode}`);
    const t0 = process.hrtime.bigint();
    const acks = await client.enqueueMany(sha256Items(jobs, opts.payloadBytes, 0), { window: opts.window });
    const elapsed = secondsSince(t0);
    await prof.stop();
    const refused = acks.filter((r) => r instanceof Error).length;
    if (refused > 0) throw new Error(`journal ${mode}: ${refused} submissions refused: ${String(acks.find((r) => r instanceof Error))}`);
    await client.close({ timeoutMs: 2_000 });
    return { mode, jobs, acksPerSec: round(jobs / elapsed), elapsedMs: round(elapsed * 1000) };
  } finally {
    await stop(opts, proc);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
}

async function runJournal(opts: Options): Promise<JournalResult> {
  if (!existsSync(join(ROOT, 'src/lib/journal.ts'))) {
    log('journal: src/lib/journal.ts does not exist yet; skipped');
    return { skipped: 'src/lib/journal.ts does not exist yet', modes: [], batchRatio: NaN };
  }
  const memory = await runJournalMode(opts, 'memory', opts.journalN);
  const batch = await runJournalMode(opts, 'batch', opts.journalN);
  const always = await runJournalMode(opts, 'always', Math.min(opts.journalN, opts.journalAlwaysN));
  return { modes: [memory, batch, always], batchRatio: round(batch.acksPerSec / memory.acksPerSec, 3) };
}

// ---------------------------------------------------------------------------
// Report



/** The phase name of a scale point's rows, e.g. `scale (deep queue: 1,000,000 queued)`. */
function scaleLabel(s: ScaleResult): string {
  const tls = s.tls ? ', tls' : '';
  return s.point === 'deep-queue' ? `scale (deep queue: ${fmtInt(s.queuedAtStart)} queued${tls})` : `scale (${s.workerConnections} worker connections${tls})`;
}

/** A scale point with its scheduler µs per job ÷ the defaults' throughput's, when that ran (the same workers, one connection each). */
function scaleEntry(s: ScaleResult, throughput: ThroughputResult | null): ScaleEntry {
  const us = (cpu: ProcCpu[]): number => cpu.find((c) => c.name === 'scheduler')?.usPerJob ?? NaN;
  if (throughput?.config !== 'defaults') return s;
  return { ...s, schedulerRatioToThroughput: round(us(s.cpu) / us(throughput.cpu), 3) };
}

function targetsOf(r: Report): Target[] {
  const t: Target[] = [];
  // Issue 9's targets, at the defaults a user gets. Latency p50 has no fixed target: it is judged
  // next to beanstalkd's in the same sitting (bench/beanstalkd-latency.ts) and against the relay
  // floor of this run.
  if (r.throughput) {
    t.push({ name: 'throughput jobs/s', target: '>= 100000', value: r.throughput.jobsPerSec, ok: r.throughput.jobsPerSec >= 100_000 });
    t.push({ name: 'CPU µs per job', target: '<= 16', value: r.throughput.usPerJobTotal, ok: r.throughput.usPerJobTotal <= 16 });
  }
  if (r.latency) {
    t.push({ name: 'latency p99 µs', target: '<= 1000', value: r.latency.us.p99, ok: r.latency.us.p99 <= 1000 });
  }
  if (r.memory) {
    t.push({ name: 'bytes per queued job', target: '<= 200', value: r.memory.bytesPerJobRss, ok: r.memory.bytesPerJobRss <= 200 });
  }
  if (r.journaled) {
    // Issue 9: "the journal with --fsync batch at least 0.6 of that" (the end-to-end throughput).
    const v = r.journaled.ratioToFirst;
    t.push({ name: 'fsync batch ÷ memory-only, end to end', target: '>= 0.6', value: v, ok: v >= 0.6 });
  }
  return t;
}

/**
 * One process's profile in a line, e.g. `profile 01-scheduler-throughput-defaults: 812 ms busy;
 * writeBuffer 17%, (garbage collector) 10%, ...`: function names only, their files and lines are in the JSON.
 */
function profileLine(p: ProfileSummary): string {
  const top = p.top.map((t) => `${t.name.replace(/ \S+:\d+$/, '')} ${Math.round(t.sharePct)}%`);
  return `profile ${p.dir}: ${Math.round(p.busyMs)} ms busy; ${top.join(', ')}`;
}

function printTable(r: Report): void {
  const rows: string[][] = [['phase', 'figure', 'value', '× baseline', '× floor', 'target']];
  const mark = (name: string): string => {
    const t = r.targets.find((x) => x.name === name);
    return t === undefined ? '' : `${t.target} ${t.ok ? 'ok' : 'MISSED'}`;
  };
  // Every phase but the echo names its transport when it is TLS; the echo says it is plain.
  const tls = r.tls ? ' (tls)' : '';
  const b = r.baseline;
  if (b) {
    const phase = r.tls ? 'baseline (plain TCP)' : 'baseline';
    rows.push([phase, `echo msgs/s (${b.payloadBytes} B, pipelined)`, fmtInt(b.msgsPerSec), '1', '', '']);
    rows.push([phase, 'echo round trip p50 / p99 / max µs', `${fmtInt(b.rttUs.p50)} / ${fmtInt(b.rttUs.p99)} / ${fmtInt(b.rttUs.max)}`, '1', '', '']);
  }
  for (const tp of [r.throughput, r.journaled, r.tuned]) {
    if (!tp) continue;
    const phase = `throughput (${throughputLabel(tp)})`;
    rows.push([
      phase,
      `jobs/s end to end (N=${tp.n}, W=${tp.workers}, c=${tp.concurrency}, ${tp.payloadBytes} B)`,
      fmtInt(tp.jobsPerSec),
      fmtRatio(tp.ratioToBaseline),
      '',
      tp === r.throughput ? mark('throughput jobs/s') : tp === r.journaled ? `${mark('fsync batch ÷ memory-only, end to end')} (${fmtRatio(r.journaled.ratioToFirst)})` : '',
    ]);
    rows.push([phase, 'results verified', `${fmtInt(tp.verified)} / ${fmtInt(tp.n)}`, '', '', '']);
    const flags = tp.concurrencyFlag === null ? 'no flags' : `--concurrency ${tp.concurrencyFlag}`;
    rows.push([phase, 'workers as declared', `${flags}: concurrency ${tp.concurrency}, prefetch ${tp.prefetch}`, '', '', '']);
    const others = Number.isNaN(tp.otherCores) ? '' : `; other processes ${tp.otherCores.toFixed(2)}`;
    rows.push([phase, 'CPU cores busy', tp.cpu.map((c) => `${c.name} ${c.cores.toFixed(2)}`).join(', ') + others, '', '', '']);
    rows.push([
      phase,
      'CPU µs per job (% in kernel)',
      `total ${tp.usPerJobTotal.toFixed(1)}: ${tp.cpu.map((c) => `${c.name} ${c.usPerJob.toFixed(1)} (${Math.round(c.sysShare * 100)}%)`).join(', ')}`,
      '',
      '',
      tp === r.throughput ? mark('CPU µs per job') : '',
    ]);
  }
  for (const s of r.scale === null ? [] : [r.scale.deepQueue, r.scale.manyWorkers]) {
    const phase = scaleLabel(s);
    const figure = s.point === 'deep-queue'
      ? `jobs/s draining (Q=${s.jobs}, W=${s.workerProcesses}, c=${s.concurrency}, ${s.payloadBytes} B, warm-up ${s.warmupJobs})`
      : `jobs/s end to end (N=${s.jobs}, ${s.workerConnections} connections in ${s.workerProcesses} processes, c=${s.concurrency}, ${s.payloadBytes} B)`;
    rows.push([phase, figure, fmtInt(s.jobsPerSec), '', '', '']);
    rows.push([phase, 'results verified', `${fmtInt(s.verified)} / ${fmtInt(s.jobs)}`, '', '', '']);
    rows.push([phase, 'workers as declared', `${s.workerConnections} connection(s) in ${s.workerProcesses} process(es): concurrency ${s.concurrency}, prefetch ${s.prefetch}`, '', '', '']);
    const others = Number.isNaN(s.otherCores) ? '' : `; other processes ${s.otherCores.toFixed(2)}`;
    rows.push([phase, 'CPU cores busy', s.cpu.map((c) => `${c.name} ${c.cores.toFixed(2)}`).join(', ') + others, '', '', '']);
    rows.push([
      phase,
      'CPU µs per job (% in kernel)',
      `total ${s.usPerJobTotal.toFixed(1)}: ${s.cpu.map((c) => `${c.name} ${c.usPerJob.toFixed(1)} (${Math.round(c.sysShare * 100)}%)`).join(', ')}`,
      '',
      '',
      s.schedulerRatioToThroughput === undefined ? '' : `scheduler ÷ throughput's ${fmtRatio(s.schedulerRatioToThroughput)}`,
    ]);
    const sched = (t: ScaleSpan): string => (t.cpu.find((c) => c.name === 'scheduler')?.usPerJob ?? NaN).toFixed(1);
    const e = s.enqueue;
    if (e) rows.push([phase, 'queueing them first (not in the figures above): acks/s; CPU µs per job', `${fmtInt(e.jobsPerSec)}; scheduler ${sched(e)}, total ${e.usPerJobTotal.toFixed(1)}`, '', '', '']);
    const [a, b] = [s.firstTenth, s.lastTenth];
    if (a && b) {
      rows.push([phase, 'first / last 10% of the drain: jobs/s', `${fmtInt(a.jobsPerSec)} / ${fmtInt(b.jobsPerSec)}`, '', '', '']);
      rows.push([phase, 'first / last 10%: CPU µs per job', `scheduler ${sched(a)} / ${sched(b)}, total ${a.usPerJobTotal.toFixed(1)} / ${b.usPerJobTotal.toFixed(1)}`, '', '', '']);
    }
  }
  const l = r.latency;
  if (l) {
    const f = l.floor;
    // Plain TCP even with --tls, like the echo: the kernel's cost per hop, before anything TLS adds.
    const floorPhase = r.tls ? 'latency (plain TCP)' : 'latency';
    rows.push([floorPhase, 'floor: the same loop through a do-nothing Node relay p50 / p99 µs', `${fmtInt(f.us.p50)} / ${fmtInt(f.us.p99)}`, '', '1', '']);
    rows.push([`latency${tls}`, 'submit-and-wait p50 µs (compare: bench/beanstalkd-latency.ts)', fmtInt(l.us.p50), fmtRatio(l.p50RatioToBaseline), fmtRatio(l.p50RatioToFloor), '']);
    rows.push([`latency${tls}`, 'submit-and-wait p99 µs', fmtInt(l.us.p99), fmtRatio(l.p99RatioToBaseline), fmtRatio(l.p99RatioToFloor), mark('latency p99 µs')]);
    rows.push([`latency${tls}`, 'submit-and-wait max µs', fmtInt(l.us.max), '', '', '']);
  }
  const m = r.memory;
  if (m) {
    const phase = `memory${tls}`;
    rows.push([phase, `bytes per queued job (RSS, ${fmtInt(m.jobs)} jobs on ${fmtInt(m.warmupJobs)})`, fmtInt(m.bytesPerJobRss), '', '', mark('bytes per queued job')]);
    rows.push([phase, 'bytes per queued job (JS heap)', fmtInt(m.bytesPerJobHeap), '', '', '']);
    rows.push([phase, 'scheduler RSS before / after / peak', `${fmtBytes(m.rssBeforeBytes)} / ${fmtBytes(m.rssAfterBytes)} / ${fmtBytes(m.peakRssBytes)}`, '', '', '']);
    rows.push([phase, 'V8 young generation before / after', `${fmtBytes(m.newSpaceBeforeBytes)} / ${fmtBytes(m.newSpaceAfterBytes)}`, '', '', '']);
    rows.push([phase, 'enqueue acks/s while filling', fmtInt(m.enqueuePerSec), '', '', '']);
  }
  const j = r.journal;
  if (j) {
    if (j.skipped !== undefined) rows.push([`journal${tls}`, 'skipped', j.skipped, '', '', '']);
    for (const mode of j.modes) {
      const what = mode.mode === 'memory' ? 'memory only' : `--fsync ${mode.mode}`;
      rows.push([
        `journal${tls}`,
        `submit acks/s, ${what} (${fmtInt(mode.jobs)} jobs)`,
        fmtInt(mode.acksPerSec),
        fmtRatio(j.ratioToBaseline[mode.mode] ?? NaN),
        '',
        // Submits alone, where the journal is most of the work; the target is end to end (throughput).
        mode.mode === 'batch' ? `÷ memory-only ${fmtRatio(j.batchRatio)}` : '',
      ]);
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const line = (row: string[]): string => row.map((cell, c) => (c >= 2 && c <= 4 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd();
  const out = [
    `taskwire bench: node ${r.machine.node}, ${r.machine.cpus} × ${r.machine.cpuModel}, ${fmtBytes(r.machine.memoryBytes)} RAM, ${(r.durationMs / 1000).toFixed(1)} s`,
    line(rows[0]!),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.slice(1).map(line),
    ...r.profiles.map(profileLine),
    ...r.notes.map((n) => `note: ${n}`),
  ];
  process.stdout.write(out.join('\n') + '\n');
}

// ---------------------------------------------------------------------------

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return 2;
  }
  installCleanup();
  Client = await loadClient(opts.runtime);
  try {
    if (opts.tls) pki = makeBenchPki();
    return await runAll(opts);
  } finally {
    removeBenchPki(pki);
  }
}

async function runAll(opts: Options): Promise<number> {
  if (opts.runtime === 'dist' && newestMtime(join(ROOT, 'src')) > statSync(join(ROOT, 'dist/server.js')).mtimeMs) {
    log('warning: src/ is newer than dist/: run `npm run build` first, or this measures old code');
  }
  const started = process.hrtime.bigint();
  const notes: string[] = [];
  const load = loadavg()[0] ?? 0;
  const busy = await cpuBusyShare(500);
  if (busy > 0.1) notes.push(`the CPUs were ${Math.round(busy * 100)}% busy with other work just before the run: the figures are skewed`);
  const run = (p: Phase): boolean => !opts.skip.has(p);
  const haveWorker = workerAvailable(opts);
  if (!haveWorker && (run('throughput') || run('scale') || run('latency'))) notes.push(`${opts.workerScript} does not exist (yet): throughput, scale and latency skipped`);
  if (opts.workerScript !== 'src/worker.ts') notes.push(`workers: ${opts.workerScript}, not the real worker`);

  if (opts.tls) notes.push('scheduler, workers and clients spoke TLS (throwaway P-256 certificates); the echo baseline and the latency floor are plain TCP');
  if (opts.workerScript !== 'src/worker.ts' && opts.concurrency === undefined) notes.push(`${opts.workerScript} runs at its own default concurrency`);

  const baseline = run('baseline') ? await runBaseline(opts) : null;
  const tps: ThroughputResult[] = [];
  if (run('throughput') && haveWorker) {
    for (const cfg of throughputConfigs(opts)) tps.push(await runThroughput(opts, cfg));
  }
  for (const tp of tps) {
    if (tp.otherCores > 0.1) notes.push(`other processes kept ${tp.otherCores.toFixed(2)} cores busy during throughput (${throughputLabel(tp)}): its jobs/s is low`);
  }
  const [throughput, tuned] = [tps[0] ?? null, tps.find((t) => t.config === 'tuned') ?? null];
  const journaled = tps.find((t) => t.config === 'journal') ?? null;
  const scale = run('scale') && haveWorker ? { deepQueue: await runDeepQueue(opts), manyWorkers: await runManyWorkers(opts) } : null;
  for (const s of scale === null ? [] : [scale.deepQueue, scale.manyWorkers]) {
    if (s.otherCores > 0.1) notes.push(`other processes kept ${s.otherCores.toFixed(2)} cores busy during ${scaleLabel(s)}: its jobs/s is low`);
  }
  const latency = run('latency') && haveWorker ? await runLatency(opts) : null;
  const memory = run('memory') ? await runMemory(opts) : null;
  const journal = run('journal') ? await runJournal(opts) : null;

  if (profileDirs.length > 0) log(`profiles: summarising ${profileDirs.length}`);
  const profiles = summariseProfiles(notes);
  const base = baseline?.msgsPerSec ?? NaN;
  const cpu = cpus();
  const report: Report = {
    machine: {
      cpus: cpu.length,
      cpuModel: cpu[0]?.model ?? '?',
      memoryBytes: totalmem(),
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      loadAvg1m: round(load, 3),
      busyAtStart: round(busy, 3),
    },
    options: { ...opts, skip: [...opts.skip] },
    durationMs: Math.round(secondsSince(started) * 1000),
    tls: opts.tls,
    baseline,
    throughput: throughput && { ...throughput, ratioToBaseline: round(throughput.jobsPerSec / base, 3) },
    journaled: journaled && {
      ...journaled,
      ratioToBaseline: round(journaled.jobsPerSec / base, 3),
      ratioToFirst: round(journaled.jobsPerSec / (throughput?.jobsPerSec ?? NaN), 3),
    },
    tuned: tuned && { ...tuned, ratioToBaseline: round(tuned.jobsPerSec / base, 3) },
    scale: scale && { deepQueue: scaleEntry(scale.deepQueue, throughput), manyWorkers: scaleEntry(scale.manyWorkers, throughput) },
    latency: latency && {
      ...latency,
      p50RatioToBaseline: round(latency.us.p50 / (baseline?.rttUs.p50 ?? NaN), 3),
      p99RatioToBaseline: round(latency.us.p99 / (baseline?.rttUs.p99 ?? NaN), 3),
      p50RatioToFloor: round(latency.us.p50 / latency.floor.us.p50, 3),
      p99RatioToFloor: round(latency.us.p99 / latency.floor.us.p99, 3),
    },
    memory,
    journal: journal && {
      ...journal,
      ratioToBaseline: Object.fromEntries(journal.modes.map((m) => [m.mode, round(m.acksPerSec / base, 3)])),
    },
    targets: [],
    profiles,
    notes,
  };
  report.targets = targetsOf(report);
  if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
  else printTable(report);

  // Wrong answers are a failure of the run; a slow one is not.
  let code = 0;
  for (const tp of tps) if (tp.verified !== tp.n) code = 1;
  for (const s of scale === null ? [] : [scale.deepQueue, scale.manyWorkers]) {
    if (s.verified !== s.jobs || s.doneReported !== s.jobs) {
      log(`${scaleLabel(s)}: ${fmtInt(s.verified)} of ${fmtInt(s.jobs)} verified, the scheduler counts ${fmtInt(s.doneReported)} done`);
      code = 1;
    }
  }
  if (latency && (latency.verified !== latency.n || latency.floor.verified !== latency.floor.n)) code = 1;
  if (memory && memory.queuedReported !== memory.jobs) {
    log(`memory: the scheduler reports ${memory.queuedReported} queued, expected ${memory.jobs}`);
    code = 1;
  }
  return code;
}

main().then(
  (code) => {
    killAll();
    process.exit(code);
  },
  (err: unknown) => {
    killAll();
    process.stderr.write(`bench: failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
