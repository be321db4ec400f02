import type { OperationType } from '../../operations/registry.ts';
import { collectionCreate } from './create.ts';
import { collectionAppend, collectionIndex } from './load.ts';
import { collectionReindex } from './reindex.ts';
import { collectionDelete, collectionRemoveSource } from './remove.ts';
import { collectionExport, collectionImport } from './transfer.ts';

/** The collection operation types (SPEC §3). */
export const COLLECTION_TYPES: OperationType[] = [
  collectionCreate,
  collectionIndex,
  collectionAppend,
  collectionReindex,
  collectionRemoveSource,
  collectionDelete,
  collectionExport,
  collectionImport,
];
