import { encodeGlobalID, resolveCursorConnection } from '@pothos/plugin-relay';
import { auditingRefusals } from '../audit/denials.ts';
import { recordAudit } from '../audit/record.ts';
import { canSeeUserDetails } from '../auth/visibility.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import { builder } from '../graphql/builder.ts';
import { COUNT_CAP, capped, connectionNames } from '../graphql/connections.ts';
import { ErrorInterface } from '../graphql/errors.ts';
import { parseGlobalId, rowCursor, rowOfCursor } from '../graphql/ids.ts';
import { InsufficientCreditsError } from './errors.ts';
import { accountOf, grant, type LedgerRow, ledgerCount, ledgerPage } from './ledger.ts';

/** GraphQL of credits: a user's balance and ledger, grantCredits, and the refusal of a start. */

builder.objectType(InsufficientCreditsError, {
  name: 'InsufficientCreditsError',
  description: 'The start needs more credits than are available; nothing was created.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof InsufficientCreditsError,
  fields: (t) => ({
    required: t.field({ type: 'SafeInt', resolve: (e) => e.required }),
    available: t.field({ type: 'SafeInt', resolve: (e) => e.available }),
  }),
});

const CreditsRef = builder.objectRef<{ balance: number; reserved: number }>('Credits').implement({
  description: 'A user’s credits, in whole credits.',
  fields: (t) => ({
    balance: t.field({
      type: 'SafeInt',
      description: 'Available to start operations.',
      resolve: (c) => c.balance,
    }),
    reserved: t.field({
      type: 'SafeInt',
      description: 'Held by unfinished operations: consumed when they complete, refunded otherwise.',
      resolve: (c) => c.reserved,
    }),
  }),
});

const CreditKindEnum = builder.enumType('CreditKind', {
  values: {
    GRANT: { description: 'Credits added: the initial grant, or grantCredits by an admin.' },
    RESERVE: { description: 'Held when an operation was started (its type’s cost).' },
    CONSUME: { description: 'The reservation of an operation that COMPLETED, spent.' },
    REFUND: { description: 'The reservation of an operation that FAILED or was CANCELLED, returned.' },
  } as const,
});

const LedgerEntryRef = builder.objectRef<LedgerRow>('CreditLedgerEntry').implement({
  description: 'One movement of credits.',
  fields: (t) => ({
    id: t.exposeID('id'),
    kind: t.field({ type: CreditKindEnum, resolve: (row) => row.kind }),
    amount: t.field({ type: 'SafeInt', resolve: (row) => row.amount }),
    balanceAfter: t.field({
      type: 'SafeInt',
      description: 'The balance after it.',
      resolve: (row) => row.balanceAfter,
    }),
    operationId: t.id({
      nullable: true,
      description: 'The operation it concerns (its global id; it may have been deleted since).',
      resolve: (row) => (row.operationId ? encodeGlobalID('Operation', row.operationId) : null),
    }),
    reason: t.exposeString('reason', { nullable: true, description: 'Why credits were granted.' }),
    createdAt: t.field({ type: 'DateTime', resolve: (row) => new Date(row.createdAt) }),
  }),
});

builder.prismaObjectField('User', 'credits', (t) =>
  t.field({
    type: CreditsRef,
    nullable: true,
    description: 'Your credits (admins: any user’s); null for other users.',
    resolve: (user, _, context) =>
      canSeeUserDetails(context.viewer, user.id) ? accountOf(context.resources.db, user.id) : null,
  }),
);

const ledgerConnection = connectionNames('CreditLedgerEntry', 'credit ledger entries');
const CreditLedgerEntryConnection = builder.connectionObject(
  { type: LedgerEntryRef, ...ledgerConnection.connection },
  ledgerConnection.edge,
);

builder.prismaObjectField('User', 'creditLedger', (t) =>
  t.connection(
    {
      type: LedgerEntryRef,
      nullable: true,
      description: 'Your credit movements, newest first (admins: any user’s); null for other users.',
      resolve: async (user, args, context) => {
        if (!canSeeUserDetails(context.viewer, user.id)) return null;
        const { db } = context.resources;
        const connection = await resolveCursorConnection<Promise<LedgerRow[]>>(
          { args, toCursor: (row: LedgerRow) => rowCursor(row.id), defaultSize: 20, maxSize: 100 },
          (page): Promise<LedgerRow[]> =>
            ledgerPage(db, user.id, {
              ...page,
              after: rowOfCursor(page.after),
              before: rowOfCursor(page.before),
            }),
        );
        return { ...connection, totalCount: () => capped(ledgerCount(db, user.id, COUNT_CAP)) };
      },
    },
    CreditLedgerEntryConnection,
  ),
);

const GrantCreditsInput = builder.inputType('GrantCreditsInput', {
  fields: (t) => ({
    userId: t.id({ required: true, description: 'The user’s global id.' }),
    amount: t.field({ type: 'SafeInt', required: true, description: 'Whole credits, at least 1.' }),
    reason: t.string({ required: true, description: 'Why (1 to 1000 characters), recorded in the ledger.' }),
  }),
});

const GrantCreditsSuccess = builder
  .objectRef<{ entry: LedgerRow; credits: { balance: number; reserved: number } }>('GrantCreditsSuccess')
  .implement({
    fields: (t) => ({
      entry: t.field({ type: LedgerEntryRef, resolve: (s) => s.entry }),
      credits: t.field({
        type: CreditsRef,
        description: 'The user’s credits after the grant.',
        resolve: (s) => s.credits,
      }),
    }),
  });

builder.mutationField('grantCredits', (t) =>
  t.field({
    type: GrantCreditsSuccess,
    description: 'Admins only: adds credits to a user’s balance, with a GRANT row in their ledger.',
    authScopes: { loggedIn: true },
    errors: {
      types: [ValidationError, NotFoundError, ForbiddenError],
      directResult: true,
      union: { name: 'GrantCreditsResult' },
    },
    args: { input: t.arg({ type: GrantCreditsInput, required: true }) },
    resolve: (_, { input }, context) =>
      auditingRefusals(context.resources, context.viewer, { what: 'grantCredits' }, async () => {
        const viewer = context.viewer!;
        const { db, config } = context.resources;
        // A malformed id is a ValidationError for anyone (like every ID argument); then admins only.
        const userId = parseGlobalId(String(input.userId), 'User', ['userId']);
        if (!viewer.isAdmin) throw new ForbiddenError('grant credits');
        const problems = [];
        if (input.amount < 1 || input.amount > config.maxGrantCredits)
          problems.push({ path: ['amount'], message: `must be 1 to ${config.maxGrantCredits}` });
        if (input.reason.trim().length < 1 || input.reason.length > 1000)
          problems.push({ path: ['reason'], message: 'must be 1 to 1000 characters' });
        if (problems.length) throw new ValidationError(problems);
        const entry = await db.$transaction(async (tx) => {
          const row = await grant(tx, {
            userId,
            amount: input.amount,
            reason: input.reason,
            actorId: viewer.id,
          });
          if (row) {
            await recordAudit(tx, {
              actorId: viewer.id,
              action: 'CREDITS_GRANTED',
              targetUserId: userId,
              data: { amount: input.amount, reason: input.reason, balanceAfter: row.balanceAfter },
            });
          }
          return row;
        });
        if (!entry) throw new NotFoundError('User', String(input.userId));
        return { entry, credits: await accountOf(db, userId) };
      }),
  }),
);
