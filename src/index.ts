/**
 * taskwire: a distributed task scheduler with its own binary protocol over
 * TCP. The scheduler, worker and client classes and their types. The wire
 * protocol alone is `taskwire/protocol`.
 */
export { Client, JobResult, TIER_PRIORITY } from './client.js';
export type {
  Address,
  CloseOptions,
  ConnectOptions,
  EnqueueResult,
  ListOptions,
  ListPage,
  AdminRequest,
  PauseResult,
  PurgeResult,
  RetryManyResult,
  ProgressListener,
  SubmitItem,
  SubmitManyOptions,
  SubmitOptions,
  Tier,
  WaitOptions,
} from './client.js';

export { Scheduler } from './server.js';
export type { SchedulerOptions } from './server.js';
export type { HttpOptions } from './lib/http/http-server.js';

export { Worker } from './worker.js';
export type { ReadyInfo, ReconnectInfo, StuckInfo, WorkerEvents, WorkerLogLevel, WorkerOptions } from './worker.js';

export { WorkerPool } from './lib/pool/worker-pool.js';
export type { PoolProcessInfo, WorkerPoolEvents, WorkerPoolOptions } from './lib/pool/worker-pool.js';

export { EX_TEMPFAIL, execHandler } from './lib/exec-handler.js';
export type { ExecCommand, ExecHandlerOptions } from './lib/exec-handler.js';

export { loadHandlers } from './lib/handlers-module.js';
export type { HandlersTarget, RegisterHandlers } from './lib/handlers-module.js';

export { BUILTIN_KINDS, HandlerRegistry, createBuiltinRegistry, encodeArgs, encodeResult } from './lib/jobs.js';
export type { BuiltinKind, Handler, JobContext } from './lib/jobs.js';

export {
  ClosedError,
  ErrorCode,
  JobCancelledError,
  JobFailedError,
  PermanentError,
  ProtocolError,
  TaskwireError,
  isErrorCode,
} from './lib/errors.js';

export { PROTOCOL_VERSION } from './lib/protocol.js';
export type { AttemptInfo, JobInfo, JobState, JournalStats, KindStats, LimitStats, StatsInfo, WorkerInfo } from './lib/protocol.js';

export { VERSION } from './lib/version.js';
