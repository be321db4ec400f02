import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { type DocumentNode, print } from 'graphql';
import { fromHttpStatus, type GraphQLErrorLike, OpsgraphError, RetryableEnd } from './errors.js';

/** A document to send: a typed document (codegen), an untyped DocumentNode, or query text. */
export type Document<TResult = unknown, TVariables = Record<string, unknown>> =
  | TypedDocumentNode<TResult, TVariables>
  | DocumentNode
  | string;

/** The query text of a document. */
export const queryText = (document: Document<unknown, never>): string =>
  typeof document === 'string' ? document : print(document as DocumentNode);

/**
 * One query or mutation over HTTP POST. Resolves with `data`; throws OpsgraphAuthError on 401 /
 * UNAUTHENTICATED and OpsgraphError on any other GraphQL error or refusal (never retried: a
 * mutation may have taken effect; use an idempotencyKey to repeat starts safely).
 */
export async function post<TResult>(
  url: string,
  token: string | null,
  query: string,
  variables: Record<string, unknown> | undefined,
  signal?: AbortSignal,
): Promise<TResult> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/graphql-response+json, application/json',
  };
  if (token) headers.authorization = `Bearer ${token}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables }),
      signal,
    });
  } catch (error) {
    throw new OpsgraphError(error instanceof Error ? error.message : 'Network error', 'NETWORK_ERROR');
  }
  let body: { data?: TResult | null; errors?: GraphQLErrorLike[] } | undefined;
  try {
    body = (await response.json()) as typeof body;
  } catch {
    body = undefined;
  }
  const errors = body?.errors ?? [];
  if (!response.ok || errors.length || !body?.data) {
    const error = fromHttpStatus(response.ok ? 200 : response.status, errors);
    if (error instanceof RetryableEnd) throw new OpsgraphError(error.message, error.code, errors);
    throw error;
  }
  return body.data;
}
