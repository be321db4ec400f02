import { createContext, createElement, type ReactNode, useContext } from 'react';
import type { OpsgraphClient } from '../client.js';

const ClientContext = createContext<OpsgraphClient | null>(null);

/** Makes `client` available to the hooks below it. */
export function OpsgraphProvider({ client, children }: { client: OpsgraphClient; children?: ReactNode }) {
  return createElement(ClientContext.Provider, { value: client }, children);
}

/** The client of the nearest OpsgraphProvider. */
export function useOpsgraphClient(): OpsgraphClient {
  const client = useContext(ClientContext);
  if (!client) throw new Error('useOpsgraphClient: no <OpsgraphProvider client={…}> above this component');
  return client;
}
