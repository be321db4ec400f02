import type { Viewer } from '../auth/viewer.ts';
import type { DiagnosticsAccess } from '../config.ts';
import type { OperationType, Registry } from './registry.ts';

/**
 * Who may use which operation types. The `diagnostics.*` types do no real work (they sleep, echo,
 * fail on request): they are for tests, benchmarks and first steps, so a production deployment
 * offers them to admins only (Config.diagnostics). To everyone else they do not exist: not listed
 * in operationTypes, and starting one, alone or in a batch, is an unknown type.
 */

/** Types named with this prefix are diagnostics. */
export const DIAGNOSTICS_PREFIX = 'diagnostics.';

export const isDiagnostics = (type: OperationType): boolean => type.name.startsWith(DIAGNOSTICS_PREFIX);

/** Whether a viewer (null: anonymous) may start a type and see it listed. */
export function mayUse(access: DiagnosticsAccess, viewer: Viewer | null, type: OperationType): boolean {
  if (!isDiagnostics(type)) return true;
  return access === 'all' || (access === 'admins' && viewer?.isAdmin === true);
}

/** The registry as one viewer sees it: the types they may not use are unknown to it. */
export function registryFor(registry: Registry, access: DiagnosticsAccess, viewer: Viewer | null): Registry {
  if (access === 'all') return registry;
  return {
    ...registry,
    startable: (name) => {
      const type = registry.startable(name);
      return type && mayUse(access, viewer, type) ? type : undefined;
    },
    publicTypes: () => registry.publicTypes().filter((type) => mayUse(access, viewer, type)),
  };
}
