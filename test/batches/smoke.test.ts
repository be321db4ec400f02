import { describe, expect, it } from 'vitest';
import { itemsById, settleBatch, startBatchOk } from '../support/batches.ts';
import { collectionFolders, writeFiles } from '../support/collections.ts';
import { useServer } from '../support/fixtures.ts';

const folders = collectionFolders();
const server = useServer({ sourcesRoot: folders.sourcesRoot, storageDir: folders.storageDir });

describe('batch smoke', () => {
  it('create → index → export', async () => {
    writeFiles(folders.sourcesRoot, { 'docs/a.md': '# A\n\nalpha beta', 'docs/b.md': '# B\n\ngamma delta' });
    const { id, plan } = await startBatchOk(server.app.url, server.tokens.alice, {
      items: [
        { id: 'create', type: 'collection.create', input: { name: 'smoke' } },
        {
          id: 'index',
          type: 'collection.index',
          input: { collectionId: '$ref:create.collectionId', source: { kind: 'folder', path: 'docs' } },
          dependsOn: ['create'],
        },
        {
          id: 'export',
          type: 'collection.export',
          input: { collectionId: '$ref:create.collectionId', file: 'backup_$ref:index.documents_v2' },
          dependsOn: ['index'],
        },
      ],
    });
    console.log(JSON.stringify(plan));
    const batch = await settleBatch(server.app.url, server.tokens.alice, id);
    console.log(JSON.stringify(batch, null, 1));
    expect(batch.status).toBe('COMPLETED');
    expect(itemsById(batch).export?.status).toBe('COMPLETED');
  });
});
