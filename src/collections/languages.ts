import { z } from 'zod';

/** PostgreSQL's built-in text search configurations: the languages a collection can be indexed in. */
export const LANGUAGES = [
  'simple',
  'arabic',
  'armenian',
  'basque',
  'catalan',
  'danish',
  'dutch',
  'english',
  'finnish',
  'french',
  'german',
  'greek',
  'hindi',
  'hungarian',
  'indonesian',
  'irish',
  'italian',
  'lithuanian',
  'nepali',
  'norwegian',
  'portuguese',
  'romanian',
  'russian',
  'serbian',
  'spanish',
  'swedish',
  'tamil',
  'turkish',
  'yiddish',
] as const;

export const languageInput = z
  .enum(LANGUAGES)
  .describe('Text search language (a PostgreSQL text search configuration); `simple` does no stemming');

export const chunkSizeInput = z
  .int()
  .min(200)
  .max(20_000)
  .describe('Target characters per indexed chunk (200–20000)');

export const batchSizeInput = z
  .int()
  .min(1)
  .max(10_000)
  .optional()
  .describe('Documents per batch and per transaction (default: OPSGRAPH_COLLECTION_BATCH_SIZE, 100)');
