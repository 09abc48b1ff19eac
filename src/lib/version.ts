import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** taskwire's version, from package.json (same relative path from src/lib and dist/lib). */
export const VERSION: string = (require('../../package.json') as { version: string }).version;
