export {
  type ClientOptions,
  createClient,
  type OpsgraphClient,
  type WatchOperationsOptions,
  type WatchOptions,
} from './client.js';
export { type GraphQLErrorLike, OpsgraphAuthError, OpsgraphError } from './errors.js';
export type { Document } from './http.js';
export type { RetryOptions } from './resume.js';
export * from './types.js';
