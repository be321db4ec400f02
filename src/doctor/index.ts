import type { Resources } from '../resources.ts';
import { batchOutcomes } from './batch-outcomes.ts';
import { collectionCounts } from './collection-counts.ts';
import { creditLedger } from './credit-ledger.ts';
import type { Check, DoctorOptions, Finding } from './finding.ts';
import { operationSequence } from './operation-sequence.ts';
import { orphanedJobs } from './orphaned-jobs.ts';
import { orphanedOperations } from './orphaned-operations.ts';

export type { Check, DoctorOptions, Finding };

/**
 * Every kind of drift the doctor looks for, in the order it runs them: operations before their
 * jobs (a repaired operation gets a new job; its old one is then stray), batches after their items.
 */
export const CHECKS: readonly Check[] = [
  orphanedOperations,
  orphanedJobs,
  operationSequence,
  collectionCounts,
  batchOutcomes,
  creditLedger,
];

/**
 * Exit codes of `npm run doctor` (and `opsgraph doctor`), for CI:
 * - 0: nothing found;
 * - 1: drift found, all of it repaired (`--fix`) or repairable by `--fix` (report only);
 * - 2: drift that `--fix` cannot repair (not provably safe) or whose repair failed: a human must look;
 * - 3: the doctor could not run (configuration, database unreachable).
 */
export const EXIT = { CLEAN: 0, FOUND: 1, UNFIXED: 2, FAILED: 3 } as const;

/** Runs every check (report only, or repairing with `fix`) and returns what each found. */
export async function runDoctor(r: Resources, options: DoctorOptions): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const check of CHECKS) findings.push(...(await check.run(r, options)));
  return findings;
}

/** The exit code for a run's findings (see EXIT). */
export function exitCodeOf(findings: Finding[], fix: boolean): number {
  if (findings.length === 0) return EXIT.CLEAN;
  const unfixed = findings.some((f) => (fix ? !f.fixed : !f.fixable));
  return unfixed ? EXIT.UNFIXED : EXIT.FOUND;
}

/** One line per finding — `found`, `fixed` or `NOT FIXED`, kind, subject, problem → action — then a summary. */
export function formatReport(findings: Finding[], fix: boolean): string {
  const lines = findings.map((f) => {
    const mark = !fix ? (f.fixable ? 'found' : 'NOT FIXABLE') : f.fixed ? 'fixed' : 'NOT FIXED';
    return `${mark}  ${f.kind}  ${f.subject}  ${f.problem} → ${f.action}`;
  });
  if (fix) {
    const fixed = findings.filter((f) => f.fixed).length;
    lines.push(
      `doctor: ${findings.length} problem(s) found, ${fixed} fixed, ${findings.length - fixed} not fixed`,
    );
  } else {
    const fixable = findings.filter((f) => f.fixable).length;
    lines.push(
      `doctor: ${findings.length} problem(s) found, ${fixable} fixable with --fix, ${findings.length - fixable} not fixable (report only: nothing changed)`,
    );
  }
  return `${lines.join('\n')}\n`;
}
