import type { Resources } from '../resources.ts';

/** One piece of drift the doctor found, and what `--fix` does (or did) about it. */
export interface Finding {
  /** The check that found it, e.g. `orphaned-job` (see src/doctor/index.ts). */
  kind: string;
  /** What it is about: `Operation <uuid>`, `Collection <uuid>`, `job <name>/<uuid>`, `CreditAccount <user uuid>`. */
  subject: string;
  /** What is wrong, e.g. "sequence 3, last event 5". */
  problem: string;
  /** Report only: what `--fix` would do. With `--fix`: what it did, or why it could not. */
  action: string;
  /** Whether `--fix` repairs this kind of drift at all (false: a human must look). */
  fixable: boolean;
  /** With `--fix`: whether it was repaired (or had resolved itself meanwhile). */
  fixed?: boolean;
}

/** How one doctor run works. */
export interface DoctorOptions {
  /** Repair what is safe (else only report). Default false. */
  fix: boolean;
  /**
   * Rows changed more recently than this (seconds) are left alone: a live worker may be changing
   * them. OPSGRAPH_RECONCILE_MIN_AGE_SECONDS, default 5.
   */
  minAgeSeconds: number;
  /** Most findings one check reports (and fixes) per run; a second run takes the rest. Default 1000. */
  limit: number;
  /** Rows each scanning statement reads at once (keyset pages over the table). Default 2000. */
  pageSize: number;
}

/** One kind of drift: finds it (bounded by `limit`) and, with `fix`, repairs what is safe. */
export interface Check {
  kind: string;
  /** One line for the README and `--help`. */
  description: string;
  run(r: Resources, options: DoctorOptions): Promise<Finding[]>;
}

/** Runs `fix` on each finding, recording its outcome; a repair that throws is reported, never rethrown. */
export async function fixEach<T>(
  items: T[],
  finding: (item: T) => Finding,
  fix: (item: T) => Promise<string>,
): Promise<Finding[]> {
  const out: Finding[] = [];
  for (const item of items) {
    const found = finding(item);
    if (!found.fixable) {
      out.push({ ...found, fixed: false });
      continue;
    }
    try {
      out.push({ ...found, action: await fix(item), fixed: true });
    } catch (error) {
      out.push({ ...found, action: `could not repair: ${(error as Error).message}`, fixed: false });
    }
  }
  return out;
}
