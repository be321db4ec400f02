export { OpsgraphProvider, useOpsgraphClient } from './context.js';
export {
  type UseBatchResult,
  type UseOperationResult,
  useBatch,
  useCancelOperation,
  useOperation,
  useOperations,
  useStartOperation,
} from './hooks.js';
