import { builder } from '../graphql/builder.ts';

builder.prismaNode('User', {
  id: { field: 'id' },
  description: 'A person or service that owns operations.',
  nullable: true,
  // Users see themselves; admins see everyone.
  findUnique: (id, context) => ({
    id: context.viewer?.isAdmin || context.viewer?.id === id ? id : '00000000-0000-0000-0000-000000000000',
  }),
  fields: (t) => ({
    name: t.exposeString('name'),
    isAdmin: t.exposeBoolean('isAdmin'),
  }),
});

builder.queryField('viewer', (t) =>
  t.prismaField({
    type: 'User',
    nullable: true,
    description: 'The authenticated user, or null without a token.',
    resolve: (query, _, __, context) =>
      context.viewer
        ? context.resources.db.user.findUnique({ ...query, where: { id: context.viewer.id } })
        : null,
  }),
);
