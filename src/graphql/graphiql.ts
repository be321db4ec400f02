import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import type { GraphiQLOptions } from 'graphql-yoga';

/** Shown in a new GraphiQL tab: sign in, list what you may start, start one and watch it. */
const DEFAULT_QUERY = `# opsgraph GraphiQL. Put your token in the Headers tab below:
#   {"Authorization": "Bearer <token printed by npm run token -- <your name>>"}
# Run StartSleep, copy the id it returns into the variables of WatchOperation and run that:
# subscriptions stream here over SSE.

query Viewer {
  viewer { name }
  operationTypes { name description }
}

mutation StartSleep {
  startOperation(input: { type: "diagnostics.sleep", input: { steps: 10, stepMs: 300 } }) {
    __typename
    ... on StartOperationSuccess { operation { id status } }
    ... on Error { message }
  }
}

subscription WatchOperation($id: ID!) {
  operationUpdated(id: $id) {
    sequence
    event { kind message }
    operation { status progress { current total fraction } }
  }
}
`;

/** Our GraphiQL settings: title, default query, and subscriptions over SSE. */
export const GRAPHIQL_OPTIONS: GraphiQLOptions = {
  title: 'opsgraph GraphiQL',
  // SSE carries the Headers tab (Authorization) on every subscription request; a WebSocket would
  // need connection params, which GraphiQL does not take from that tab.
  subscriptionsProtocol: 'SSE',
  defaultQuery: DEFAULT_QUERY,
  defaultHeaders: JSON.stringify({ Authorization: 'Bearer <token>' }, null, 2),
};

/**
 * Yoga's `renderGraphiQL`: the page of `@graphql-yoga/render-graphiql`, which inlines GraphiQL's
 * scripts, styles and editor workers (about 9 MB), so it works without internet access (Yoga's
 * default page loads them from a CDN). Rendered once per distinct options and kept.
 */
export function createGraphiQLRenderer(): (options: GraphiQLOptions) => string {
  const pages = new Map<string, string>();
  return (options) => {
    const key = JSON.stringify(options);
    let page = pages.get(key);
    if (page === undefined) {
      page = renderGraphiQL(options);
      if (pages.size < 4) pages.set(key, page);
    }
    return page;
  };
}
