import { collectionsWhere } from '../auth/visibility.ts';

/** Who may see a collection (and search it): the shared rule in src/auth/visibility.ts. */
export const visibleCollections = collectionsWhere;
