import { builder } from '../graphql/builder.ts';

builder.prismaNode('User', {
  id: { field: 'id' },
  description: 'A person or service that owns operations.',
  findUnique: (id, context) =>
    context.viewer?.isAdmin || context.viewer?.id === id ? { id } : { id, name: '\u0000never' },
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
