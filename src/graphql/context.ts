import type { Viewer } from '../auth/viewer.ts';
import type { Resources } from '../resources.ts';

/** Per-request GraphQL context: the shared resources and who is asking. */
export interface Context {
  resources: Resources;
  viewer: Viewer | null;
}
