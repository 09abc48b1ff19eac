/**
 * Summarises V8 CPU profiles (`node --cpu-prof`): the functions with the most
 * self time, as a share of the samples that were not idle.
 *
 *   npx tsx bench/profile-summary.ts [--top 15] [--by function|file] FILE.cpuprofile...
 *   npx tsx bench/profile-summary.ts --fn NAME FILE.cpuprofile   (hot lines of one function;
 *     line numbers are only meaningful for compiled code: `--runtime dist`)
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  positionTicks?: { line: number; ticks: number }[];
}
/** A `.cpuprofile` file, as V8 writes it (the fields read here). */
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** One row of the summary. */
export interface HotItem {
  name: string;
  selfMs: number;
  /** Share of the non-idle time, 0–1. */
  share: number;
}

function labelOf(f: CallFrame, by: 'function' | 'file'): string {
  const file = f.url === '' ? '' : f.url.replace(/^file:\/\//, '').replace(/^.*\/(src|bench|node_modules)\//, '$1/');
  if (by === 'file') return file === '' ? f.functionName || '(native)' : file.replace(/^node:/, 'node:');
  const fn = f.functionName || '(anonymous)';
  return file === '' ? fn : `${fn} ${file}:${f.lineNumber + 1}`;
}

/** Self time per function (or file) of one profile, largest first; idle time left out. */
export function summarise(profile: CpuProfile, by: 'function' | 'file' = 'function'): { items: HotItem[]; busyMs: number; wallMs: number } {
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const selfUs = new Map<string, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let busyUs = 0;
  for (let i = 0; i < samples.length; i++) {
    const node = byId.get(samples[i]!);
    // timeDeltas[i] is the time before sample i; attribute the next delta to it (as DevTools does).
    const us = Math.max(0, deltas[i + 1] ?? 0);
    if (node === undefined || node.callFrame.functionName === '(idle)') continue;
    const label = labelOf(node.callFrame, by);
    selfUs.set(label, (selfUs.get(label) ?? 0) + us);
    busyUs += us;
  }
  const items = [...selfUs.entries()]
    .map(([name, us]) => ({ name, selfMs: us / 1000, share: busyUs === 0 ? 0 : us / busyUs }))
    .sort((a, b) => b.selfMs - a.selfMs);
  return { items, busyMs: busyUs / 1000, wallMs: (profile.endTime - profile.startTime) / 1000 };
}

/** Sample counts per source line of the functions called `fn`, hottest first. */
export function hotLines(profile: CpuProfile, fn: string): { where: string; ticks: number }[] {
  const ticks = new Map<string, number>();
  for (const n of profile.nodes) {
    if (n.callFrame.functionName !== fn) continue;
    const file = n.callFrame.url.replace(/^.*\//, '');
    for (const p of n.positionTicks ?? []) {
      const where = `${file}:${p.line}`;
      ticks.set(where, (ticks.get(where) ?? 0) + p.ticks);
    }
  }
  return [...ticks.entries()].map(([where, t]) => ({ where, ticks: t })).sort((a, b) => b.ticks - a.ticks);
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string' }, by: { type: 'string' }, fn: { type: 'string' } },
  });
  if (values.fn !== undefined) {
    for (const file of positionals) {
      const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
      process.stdout.write(`${basename(file)}: ${values.fn}\n`);
      for (const l of hotLines(profile, values.fn).slice(0, Number(values.top ?? 15))) {
        process.stdout.write(`  ${String(l.ticks).padStart(6)}  ${l.where}\n`);
      }
    }
    return;
  }
  const top = Number(values.top ?? 15);
  const by = values.by === 'file' ? 'file' : 'function';
  for (const file of positionals) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const { items, busyMs, wallMs } = summarise(profile, by);
    process.stdout.write(`${basename(file)}: ${busyMs.toFixed(0)} ms busy of ${wallMs.toFixed(0)} ms\n`);
    for (const it of items.slice(0, top)) {
      process.stdout.write(`  ${(it.share * 100).toFixed(1).padStart(5)}%  ${it.selfMs.toFixed(0).padStart(6)} ms  ${it.name}\n`);
    }
  }
}

// Imported by bench/bench.ts (--profile): only the functions; run as a script: the command line.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main();
