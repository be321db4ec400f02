export {
  type ClientOptions,
  createClient,
  type OpsgraphClient,
  type WatchOperationsOptions,
  type WatchOptions,
} from './client.js';
export { type GraphQLErrorLike, OpsgraphAuthError, OpsgraphError } from './errors.js';
export type { Document } from './http.js';
export {
  initialOperationState,
  initialOperationsState,
  type LiveOptions,
  type OperationState,
  type OperationsState,
  upsertOperation,
  watchOperationState,
  watchOperationsState,
} from './live.js';
export type { RetryOptions } from './resume.js';
export * from './types.js';
