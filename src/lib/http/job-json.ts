/**
 * How a job looks in HTTP answers (docs/HTTP.md "Job object"): the wire's
 * JobInfo, plus the result bytes shown as text, JSON or base64, and a
 * bounded preview of the arguments.
 */
import type { JobInfo } from '../protocol.js';

/** Bytes of arguments shown in a job's detail at most (the page needs a preview, not the payload). */
export const ARGS_PREVIEW_BYTES = 4096;

/** Results up to this size are also parsed as JSON for the `json` field. */
const RESULT_JSON_BYTES = 1024 * 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Bytes as UTF-8 text, or undefined if they are not valid UTF-8. */
function asText(bytes: Buffer): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** A result's bytes: `text` when valid UTF-8 (and `json` when that parses), else `base64`. */
export interface ResultView {
  bytes: number;
  text?: string;
  json?: unknown;
  base64?: string;
}

/** Result bytes for JSON answers. */
export function resultView(data: Buffer): ResultView {
  const text = asText(data);
  if (text === undefined) return { bytes: data.length, base64: data.toString('base64') };
  const view: ResultView = { bytes: data.length, text };
  if (data.length <= RESULT_JSON_BYTES && /^\s*[[{"\d-]|^\s*(true|false|null)\s*$/.test(text)) {
    try {
      view.json = JSON.parse(text);
    } catch {
      // Text, not JSON.
    }
  }
  return view;
}

/** A bounded preview of arguments: `text` when valid UTF-8, else `hex`. */
export interface ArgsPreview {
  bytes: number;
  text?: string;
  hex?: string;
  /** True when only the first {@link ARGS_PREVIEW_BYTES} are shown. */
  truncated: boolean;
}

/** Preview of a job's arguments, as the core keeps them (a latin1 string, or a Buffer when large). */
export function argsPreview(args: string | Buffer): ArgsPreview {
  const truncated = args.length > ARGS_PREVIEW_BYTES;
  const head =
    typeof args === 'string'
      ? Buffer.from(truncated ? args.slice(0, ARGS_PREVIEW_BYTES) : args, 'latin1')
      : args.subarray(0, ARGS_PREVIEW_BYTES);
  let text = asText(head);
  if (text === undefined && truncated) {
    // The cut may split a multi-byte character: try without its last 1-3 bytes.
    for (let cut = 1; cut <= 3 && text === undefined; cut++) text = asText(head.subarray(0, head.length - cut));
  }
  if (text !== undefined) return { bytes: args.length, text, truncated };
  return { bytes: args.length, hex: head.toString('hex'), truncated };
}

/**
 * A job as the API shows it. `data`: the result bytes (STATUS of a DONE
 * job); `args`: the preview, or null when the scheduler no longer keeps them.
 */
export function jobJson(info: JobInfo, data?: Buffer, args?: ArgsPreview | null): Record<string, unknown> {
  const out: Record<string, unknown> = { ...info };
  delete out['resultData'];
  delete out['result'];
  if (data !== undefined) out['result'] = resultView(data);
  if (args !== undefined) out['args'] = args;
  return out;
}
