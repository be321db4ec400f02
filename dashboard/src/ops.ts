// The one place the dashboard gets its client and hooks from (the contract of @opsgraph/client).
export { createClient, OpsgraphAuthError, type OpsgraphClient } from './live/client.ts';
export {
  OpsgraphProvider,
  useBatch,
  useCancelOperation,
  useOperation,
  useOperations,
  useOpsgraphClient,
  useStartOperation,
} from './live/hooks.tsx';
export * from './live/types.ts';
