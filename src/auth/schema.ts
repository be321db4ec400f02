import { encodeGlobalID } from '@pothos/plugin-relay';
import { builder } from '../graphql/builder.ts';
import { canSeeUserDetails } from './visibility.ts';

builder.prismaObject('User', {
  // User is not a Node: another user's id is never shown, so it could lead nowhere. node(id) given
  // a User id answers null, as for anything else not visible (plugin-relay reads this option from
  // the type's options when it resolves node/nodes; it is typed on node types only).
  ...({ loadWithoutCache: () => null } as object),
  description:
    'A person or service that owns operations. Another user is shown only by name: every other field is null unless it is you (viewer) or you are an admin.',
  fields: (t) => ({
    id: t.field({
      type: 'ID',
      nullable: true,
      description: "Your own id (admins: any user's id); null for other users.",
      resolve: (user, _, context) =>
        canSeeUserDetails(context.viewer, user.id) ? encodeGlobalID('User', user.id) : null,
    }),
    name: t.exposeString('name', { description: 'The user’s name (everyone may see it).' }),
    isAdmin: t.boolean({
      nullable: true,
      description: 'Whether you are an admin (admins: whether this user is); null for other users.',
      resolve: (user, _, context) => (canSeeUserDetails(context.viewer, user.id) ? user.isAdmin : null),
    }),
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
