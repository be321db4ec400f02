import { afterAll, beforeAll } from 'vitest';
import type { App } from '../../src/app.ts';
import type { Config } from '../../src/config.ts';
import { startTestApp } from './app.ts';
import { tokenFor } from './client.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';

export interface Fixture {
  db: TestDatabase;
  app: App & { url: string };
  /** Tokens for alice and bob (users) and root (admin). */
  tokens: { alice: string; bob: string; root: string };
}

/**
 * One database and one in-process server per test file, started before its tests and torn down
 * after. Read the returned object's fields inside tests (they are filled in beforeAll).
 */
export function useServer(overrides: Partial<Config> = {}): Fixture {
  const fixture = {} as Fixture;
  beforeAll(async () => {
    fixture.db = await createTestDatabase();
    fixture.app = await startTestApp(fixture.db.url, overrides);
    fixture.tokens = {
      alice: await tokenFor(fixture.db.url, 'alice'),
      bob: await tokenFor(fixture.db.url, 'bob'),
      root: await tokenFor(fixture.db.url, 'root', true),
    };
  });
  afterAll(async () => {
    await fixture.app?.close();
    await fixture.db?.drop();
  });
  return fixture;
}
